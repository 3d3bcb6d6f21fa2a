{#-
    A customer's recency, frequency, monetary value and support-ticket sentiment, point in time: for
    each (customer_key, feature_date) of ``spine``, from orders and tickets dated on or before
    feature_date, windows ending on it ("30d" = feature_date - 29 .. feature_date).

    The one definition of these columns: the mart customer_features renders it for every customer at
    the latest order date, and the Python feature set customer_activity (factory_assets/assembly/
    features.py) renders this same macro for any spine (training cutoffs, nightly scoring).
-#}
{% macro customer_activity(spine, order_lines, tickets) -%}
with

activity_spine as (

    select distinct customer_key, feature_date from {{ spine }}

),

activity_orders as (

    -- one row per order (an order's lines share customer and day)
    select order_id, customer_key, min(order_date) as order_date, sum(net_amount) as order_amount
    from {{ order_lines }}
    group by order_id, customer_key

),

activity_order_stats as (

    select
        spine.customer_key,
        spine.feature_date,
        min(orders.order_date) as first_order_date,
        max(orders.order_date) as last_order_date,
        count(orders.order_id) filter (where orders.order_date > spine.feature_date - 30) as orders_30d,
        count(orders.order_id) filter (where orders.order_date > spine.feature_date - 90) as orders_90d,
        coalesce(sum(orders.order_amount) filter (where orders.order_date > spine.feature_date - 90), 0)
            as monetary_90d,
        count(orders.order_id) as lifetime_orders,
        sum(orders.order_amount) as lifetime_revenue

    from activity_spine as spine
    left join activity_orders as orders
        on orders.customer_key = spine.customer_key and orders.order_date <= spine.feature_date
    group by spine.customer_key, spine.feature_date

),

activity_ticket_stats as (

    select
        spine.customer_key,
        spine.feature_date,
        count(*) as tickets_90d,
        count(*) filter (where tickets.is_negative) as negative_tickets_90d,
        avg(tickets.sentiment_score) as avg_ticket_sentiment_90d

    from activity_spine as spine
    inner join {{ tickets }} as tickets
        on tickets.customer_key = spine.customer_key
        and tickets.created_date <= spine.feature_date
        and tickets.created_date > spine.feature_date - 90
    group by spine.customer_key, spine.feature_date

)

select
    stats.customer_key,
    stats.feature_date,
    stats.first_order_date,
    stats.last_order_date,
    cast(date_diff('day', stats.last_order_date, stats.feature_date) as integer) as recency_days,
    cast(date_diff('day', stats.first_order_date, stats.feature_date) as integer) as tenure_days,
    cast(stats.orders_30d as integer) as orders_30d,
    cast(stats.orders_90d as integer) as orders_90d,
    cast(round(stats.monetary_90d, 2) as double) as monetary_90d,
    cast(stats.lifetime_orders as integer) as lifetime_orders,
    cast(round(stats.lifetime_revenue, 2) as double) as lifetime_revenue,
    cast(coalesce(ticket_stats.tickets_90d, 0) as integer) as tickets_90d,
    cast(coalesce(ticket_stats.negative_tickets_90d, 0) as integer) as negative_tickets_90d,
    cast(coalesce(ticket_stats.avg_ticket_sentiment_90d, 0) as double) as avg_ticket_sentiment_90d

from activity_order_stats as stats
left join activity_ticket_stats as ticket_stats
    on ticket_stats.customer_key = stats.customer_key
    and ticket_stats.feature_date = stats.feature_date
{%- endmacro %}
