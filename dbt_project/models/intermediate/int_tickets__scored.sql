-- One row per support ticket (a re-delivered ticket counts once: latest ingested wins), with its
-- sentiment score and whether it is negative. No free text and no direct identifiers.

with

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

deduplicated as (

    select
        ticket_id,
        created_at,
        created_date,
        customer_key,
        order_id,
        contact_channel,
        sentiment_score,
        sentiment_score < 0 as is_negative

    from tickets
    qualify row_number() over (
        partition by ticket_id
        order by ingested_at desc, source_row_number desc
    ) = 1

)

select * from deduplicated
