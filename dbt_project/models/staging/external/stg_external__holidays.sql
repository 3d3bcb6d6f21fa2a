-- One row per (publication, holiday_date, region) as published; see int_holidays__latest_publication.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('external', 'holidays') }}

),

renamed as (

    select
        published_date,
        holiday_date,
        region,
        holiday_name,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
