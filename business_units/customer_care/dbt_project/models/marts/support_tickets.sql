-- Every support ticket once, with its masked text and, once the desk has closed it, its outcome
-- (contract data_contracts/products/support_tickets.odcs.yaml). A ticket delivered again, or closed
-- again after a reopening, counts once: the latest delivery wins.

with

tickets as (

    select * from {{ ref('stg_support__ticket_texts') }}
    qualify row_number() over (partition by ticket_id order by ingested_at desc, source_row_number desc) = 1

),

outcomes as (

    select * from {{ ref('stg_support_desk__ticket_outcomes') }}
    qualify row_number() over (
        partition by ticket_id order by closed_at desc, ingested_at desc, source_row_number desc
    ) = 1

)

select
    tickets.ticket_id,
    tickets.created_at,
    tickets.created_date,
    tickets.contact_channel,
    tickets.subject,
    tickets.body,
    outcomes.closed_date,
    outcomes.escalated,
    outcomes.resolved_by

from tickets
left join outcomes on outcomes.ticket_id = tickets.ticket_id
