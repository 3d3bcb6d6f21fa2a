{#-
    Column values match the regular expression `regex` (RE2; anchor it with ^...$ for a full match).
    Nulls are ignored (not_null is a separate test).
-#}
{% test matches_pattern(model, column_name, regex) %}

select {{ column_name }} as non_matching_value
from {{ model }}
where {{ column_name }} is not null
  and not regexp_matches(cast({{ column_name }} as varchar), '{{ regex | replace("'", "''") }}')

{% endtest %}
