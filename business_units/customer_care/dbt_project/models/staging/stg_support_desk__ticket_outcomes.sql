-- One row per delivered outcome of a closed ticket (the newest delivery of each day).

with

current_rows as (

    {{ newest_delivery('support_desk', 'ticket_outcomes') }}

)

select
    ticket_id,
    closed_at,
    cast(closed_at as date) as closed_date,
    escalated,
    resolved_by,
    _ingested_at as ingested_at,
    _row_number as source_row_number

from current_rows
