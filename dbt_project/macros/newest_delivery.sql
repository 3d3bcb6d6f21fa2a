{#-
    The rows of a raw source's newest delivery of each partition day.

    A later delivery of a day (a correction, or the same file name with new content) supersedes the
    earlier ones; raw keeps them all, staging reads only the newest. The source relation is read
    twice on purpose: a CTE read twice would be materialised whole.
-#}
{% macro newest_delivery(source_name, table_name) -%}
    select source.*
    from {{ source(source_name, table_name) }} as source
    inner join (
        select _partition_date, max(_ingested_at) as _ingested_at
        from {{ source(source_name, table_name) }}
        group by _partition_date
    ) as newest
        on source._partition_date is not distinct from newest._partition_date
        and source._ingested_at is not distinct from newest._ingested_at
{%- endmacro %}
