{#-
    Pseudonymise a personal identifier: the first 16 hex characters of sha256(salt || value).
    The salt comes from FACTORY_PII_SALT (a demo default otherwise); the same salt always yields the
    same key, so keys join across models and runs. Changing the salt re-keys every customer.
-#}
{% macro pseudonymise(column) -%}
    left(sha256('{{ env_var("FACTORY_PII_SALT", "ai-factory-demo-salt") | replace("'", "''") }}' || {{ column }}), 16)
{%- endmacro %}
