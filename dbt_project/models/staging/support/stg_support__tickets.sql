-- One row per ingested support ticket. The free-text body may contain personal data, so it is reduced
-- here to a lexicon-based sentiment score in [-1, 1] (macro sentiment_score) and never selected;
-- customer_id is pseudonymised to customer_key and customer_email is dropped.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('support', 'tickets') }}

),

renamed as (

    select
        ticket_id,
        created_at,
        cast(created_at as date) as created_date,
        {{ pseudonymise('customer_id') }} as customer_key,
        order_id,
        contact_channel,
        {{ sentiment_score('body') }} as sentiment_score,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
