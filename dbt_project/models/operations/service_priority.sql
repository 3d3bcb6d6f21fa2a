-- Predictions flowing back into operations: customers with a recent negative support ticket, ranked
-- by how likely they are to buy again (latest purchase_propensity scores), so customer service calls
-- back first the unhappy customers the business is most likely to keep.

with

latest as (

    select max(scored_date) as scored_date
    from {{ source('predictions', 'purchase_propensity') }}

),

propensity as (

    select
        p.customer_key,
        p.prediction as purchase_probability,
        p.model_version,
        p.scored_date
    from {{ source('predictions', 'purchase_propensity') }} p
    join latest using (scored_date)

),

recent_negative_tickets as (

    select
        t.customer_key,
        count(*) as negative_tickets_14d,
        max(t.created_date) as last_negative_ticket_date
    from {{ ref('int_tickets__scored') }} t
    cross join latest
    where t.is_negative
      and t.created_date > latest.scored_date - 14
      and t.created_date <= latest.scored_date
    group by t.customer_key

)

select
    cast(row_number() over (
        order by p.purchase_probability desc, r.negative_tickets_14d desc, r.customer_key
    ) as integer) as priority_rank,
    r.customer_key,
    cast(r.negative_tickets_14d as integer) as negative_tickets_14d,
    r.last_negative_ticket_date,
    p.purchase_probability,
    p.model_version,
    p.scored_date
from recent_negative_tickets r
join propensity p using (customer_key)
