-- The holiday calendar as currently known: each daily publication lists the holidays of the next
-- 14 days, so a (holiday_date, region) is published several times; the latest publication wins
-- (ties on the same publication day: the latest ingested row).

with

publications as (

    select * from {{ ref('stg_external__holidays') }}

),

latest as (

    select
        holiday_date,
        region,
        holiday_name,
        published_date

    from publications
    qualify row_number() over (
        partition by holiday_date, region
        order by published_date desc, ingested_at desc, source_row_number desc
    ) = 1

)

select * from latest
