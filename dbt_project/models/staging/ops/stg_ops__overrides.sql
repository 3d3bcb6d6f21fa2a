-- One row per ingested operator override of a model prediction.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('ops', 'overrides') }}

),

renamed as (

    select
        override_id,
        created_at,
        cast(created_at as date) as created_date,
        use_case,
        entity_id,
        operator_id,
        override_label,
        reason,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
