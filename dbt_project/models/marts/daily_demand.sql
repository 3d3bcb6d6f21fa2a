-- Dense daily demand: every (product_id, warehouse_id) pair ever ordered x every date from the first
-- to the last order date, with zeros where nothing was ordered (forecasting needs the zeros).

with

order_lines as (

    select * from {{ ref('fct_order_lines') }}

),

dates as (

    select cast(unnest(generate_series(min(order_date), max(order_date), interval 1 day)) as date) as demand_date
    from order_lines

),

pairs as (

    select distinct product_id, warehouse_id
    from order_lines

),

spine as (

    select pairs.product_id, pairs.warehouse_id, dates.demand_date
    from pairs
    cross join dates

),

observed as (

    select
        product_id,
        warehouse_id,
        order_date as demand_date,
        sum(quantity) as units,
        count(*) as order_lines,
        sum(net_amount) as revenue,
        bool_or(discount_pct > 0) as promo_active,
        avg(discount_pct) as avg_discount_pct

    from order_lines
    group by product_id, warehouse_id, order_date

),

final as (

    select
        spine.product_id,
        spine.warehouse_id,
        spine.demand_date,
        cast(coalesce(observed.units, 0) as integer) as units,
        cast(coalesce(observed.order_lines, 0) as integer) as order_lines,
        cast(round(coalesce(observed.revenue, 0), 2) as double) as revenue,
        coalesce(observed.promo_active, false) as promo_active,
        cast(coalesce(observed.avg_discount_pct, 0) as double) as avg_discount_pct

    from spine
    left join observed
        on spine.product_id = observed.product_id
        and spine.warehouse_id = observed.warehouse_id
        and spine.demand_date = observed.demand_date

)

select * from final
