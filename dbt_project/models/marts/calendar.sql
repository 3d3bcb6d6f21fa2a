-- One row per calendar date and region, from the first date in the data (orders, weather, holiday
-- publications) to the latest date known (the latest published holiday date, or the latest order or
-- weather date if later). Regions: every region seen in orders, weather or holidays.
-- Weather is null for days not observed yet (e.g. future dates).

with

holidays as (

    select * from {{ ref('int_holidays__latest_publication') }}

),

weather as (

    select * from {{ ref('int_weather__latest_observation') }}

),

order_lines as (

    select order_date, region from {{ ref('stg_erp__order_lines') }}

),

bounds as (

    select
        least(
            (select min(order_date) from order_lines),
            (select min(weather_date) from weather),
            (select min(published_date) from {{ ref('stg_external__holidays') }})
        ) as first_date,
        greatest(
            (select max(holiday_date) from holidays),
            (select max(order_date) from order_lines),
            (select max(weather_date) from weather)
        ) as last_date

),

dates as (

    select cast(unnest(generate_series(first_date, last_date, interval 1 day)) as date) as calendar_date
    from bounds
    where first_date is not null

),

regions as (

    select region from order_lines
    union
    select region from weather
    union
    select region from holidays

),

final as (

    select
        dates.calendar_date,
        regions.region,
        cast(isodow(dates.calendar_date) as integer) as day_of_week,
        isodow(dates.calendar_date) in (6, 7) as is_weekend,
        holidays.holiday_date is not null as is_holiday,
        holidays.holiday_name,
        weather.temperature_c,
        weather.precipitation_mm,
        weather.is_storm

    from dates
    cross join regions
    left join holidays
        on dates.calendar_date = holidays.holiday_date
        and regions.region = holidays.region
    left join weather
        on dates.calendar_date = weather.weather_date
        and regions.region = weather.region

)

select * from final
