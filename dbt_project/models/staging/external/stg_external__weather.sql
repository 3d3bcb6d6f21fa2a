-- One row per ingested daily weather observation and region.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('external', 'weather') }}

),

renamed as (

    select
        weather_date,
        region,
        temperature_c,
        precipitation_mm,
        storm as is_storm,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
