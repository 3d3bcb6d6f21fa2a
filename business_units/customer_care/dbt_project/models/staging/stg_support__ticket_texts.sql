-- One row per delivered ticket with its text, e-mail addresses and long numbers masked (macro
-- mask_personal_data). The text stays personal data: names and details a customer writes remain.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects
    {{ newest_delivery('support', 'tickets') }}

),

masked as (

    select
        ticket_id,
        created_at,
        cast(created_at as date) as created_date,
        contact_channel,
        {{ mask_personal_data('subject') }} as subject,
        {{ mask_personal_data('body') }} as body,
        _ingested_at as ingested_at,
        _row_number as source_row_number

    from current_rows

)

select * from masked
