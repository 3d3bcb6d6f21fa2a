{#-
    Lexicon-based sentiment of a free-text column, in [-1, 1]:
        (positive matches - negative matches) / (positive matches + negative matches), 0 when none.
    Terms come from the project vars sentiment_positive_terms / sentiment_negative_terms and are
    matched as whole words (or phrases) in the lower-cased text.
-#}
{% macro lexicon_matches(text, terms) -%}
    len(regexp_extract_all(lower(coalesce({{ text }}, '')), '\b({{ terms | join("|") | replace("'", "''") }})\b'))
{%- endmacro %}

{% macro sentiment_score(text) -%}
    {%- set positive = lexicon_matches(text, var('sentiment_positive_terms')) -%}
    {%- set negative = lexicon_matches(text, var('sentiment_negative_terms')) -%}
    case
        when ({{ positive }}) + ({{ negative }}) = 0 then 0.0
        else cast(({{ positive }}) - ({{ negative }}) as double) / (({{ positive }}) + ({{ negative }}))
    end
{%- endmacro %}
