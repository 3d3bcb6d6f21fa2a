{#-
    ``column`` with every match of each pattern in var masked_patterns replaced by ``<name>``: the
    identifiers a customer writes that a model never needs (e-mail addresses, account and phone numbers).
-#}
{% macro mask_personal_data(column) -%}
    {%- set ns = namespace(sql=column) -%}
    {%- for name, pattern in var('masked_patterns').items() -%}
        {%- set ns.sql = "regexp_replace(" ~ ns.sql ~ ", '" ~ pattern ~ "', '<" ~ name ~ ">', 'g')" -%}
    {%- endfor -%}
    {{ ns.sql }}
{%- endmacro %}
