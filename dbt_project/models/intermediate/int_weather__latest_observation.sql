-- One weather observation per (weather_date, region): a re-delivered observation replaces the
-- earlier one (latest ingested wins).

with

observations as (

    select * from {{ ref('stg_external__weather') }}

),

latest as (

    select
        weather_date,
        region,
        temperature_c,
        precipitation_mm,
        is_storm

    from observations
    qualify row_number() over (
        partition by weather_date, region
        order by ingested_at desc, source_row_number desc
    ) = 1

)

select * from latest
