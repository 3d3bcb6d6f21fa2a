-- One row per (pseudonymised) customer, as of the latest order date in the data (as_of_date).
-- Windows are inclusive of as_of_date: "30d" = the 30 days as_of_date - 29 .. as_of_date.
-- Customers are those with at least one order; tickets of other customers are not counted.
-- The columns are the macro customer_activity's, which the feature set of that name renders too.

with

order_lines as (

    select * from {{ ref('fct_order_lines') }}

),

as_of as (

    select max(order_date) as as_of_date from order_lines

),

customers as (

    -- each customer's region: that of their latest order
    select customer_key, arg_max(region, ordered_at) as region
    from order_lines
    group by customer_key

),

spine as (

    select customers.customer_key, as_of.as_of_date as feature_date
    from customers
    cross join as_of

),

activity as (

    {{ customer_activity('spine', ref('fct_order_lines'), ref('int_tickets__scored')) }}

),

final as (

    select
        activity.customer_key,
        activity.feature_date as as_of_date,
        customers.region,
        activity.first_order_date,
        activity.last_order_date,
        activity.recency_days,
        activity.orders_30d,
        activity.orders_90d,
        activity.monetary_90d,
        activity.lifetime_orders,
        activity.lifetime_revenue,
        activity.tickets_90d,
        activity.negative_tickets_90d,
        activity.avg_ticket_sentiment_90d

    from activity
    inner join customers on customers.customer_key = activity.customer_key

)

select * from final
