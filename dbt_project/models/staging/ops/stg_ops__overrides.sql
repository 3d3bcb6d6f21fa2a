-- One row per ingested operator override of a model prediction.

with

source as (

    select * from {{ source('ops', 'overrides') }}

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

    from source

)

select * from renamed
