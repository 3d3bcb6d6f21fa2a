-- One row per (pseudonymised) customer, as of the latest order date in the data (as_of_date).
-- Windows are inclusive of as_of_date: "30d" = the 30 days as_of_date - 29 .. as_of_date.
-- Customers are those with at least one order; tickets of other customers are not counted.

with

order_lines as (

    select * from {{ ref('fct_order_lines') }}

),

tickets as (

    select * from {{ ref('int_tickets__scored') }}

),

as_of as (

    select max(order_date) as as_of_date from order_lines

),

orders as (

    -- one row per order (an order's lines share customer, time and region)
    select
        order_id,
        customer_key,
        min(order_date) as order_date,
        arg_max(region, ordered_at) as region,
        max(ordered_at) as ordered_at,
        sum(net_amount) as order_amount

    from order_lines
    group by order_id, customer_key

),

order_features as (

    select
        orders.customer_key,
        arg_max(orders.region, orders.ordered_at) as region,
        min(orders.order_date) as first_order_date,
        max(orders.order_date) as last_order_date,
        count(*) filter (where orders.order_date > as_of.as_of_date - interval 30 day) as orders_30d,
        count(*) filter (where orders.order_date > as_of.as_of_date - interval 90 day) as orders_90d,
        coalesce(
            sum(orders.order_amount) filter (where orders.order_date > as_of.as_of_date - interval 90 day),
            0
        ) as monetary_90d,
        count(*) as lifetime_orders,
        sum(orders.order_amount) as lifetime_revenue

    from orders
    cross join as_of
    group by orders.customer_key

),

ticket_features as (

    select
        tickets.customer_key,
        count(*) as tickets_90d,
        count(*) filter (where tickets.is_negative) as negative_tickets_90d,
        avg(tickets.sentiment_score) as avg_ticket_sentiment_90d

    from tickets
    cross join as_of
    where tickets.created_date > as_of.as_of_date - interval 90 day
      and tickets.created_date <= as_of.as_of_date
    group by tickets.customer_key

),

final as (

    select
        order_features.customer_key,
        as_of.as_of_date,
        order_features.region,
        order_features.first_order_date,
        order_features.last_order_date,
        cast(date_diff('day', order_features.last_order_date, as_of.as_of_date) as integer) as recency_days,
        cast(order_features.orders_30d as integer) as orders_30d,
        cast(order_features.orders_90d as integer) as orders_90d,
        cast(round(order_features.monetary_90d, 2) as double) as monetary_90d,
        cast(order_features.lifetime_orders as integer) as lifetime_orders,
        cast(round(order_features.lifetime_revenue, 2) as double) as lifetime_revenue,
        cast(coalesce(ticket_features.tickets_90d, 0) as integer) as tickets_90d,
        cast(coalesce(ticket_features.negative_tickets_90d, 0) as integer) as negative_tickets_90d,
        cast(coalesce(ticket_features.avg_ticket_sentiment_90d, 0) as double) as avg_ticket_sentiment_90d

    from order_features
    cross join as_of
    left join ticket_features
        on order_features.customer_key = ticket_features.customer_key

)

select * from final
