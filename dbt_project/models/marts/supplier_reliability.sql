-- One row per supplier and delivery date on which the supplier had delivered order lines.
-- on_time_rate_28d is weighted by delivered lines over the 28 days ending on delivery_date
-- (delivery_date - 27 .. delivery_date), so busy days count more than quiet ones.

with

delivered_lines as (

    select
        supplier_id,
        delivered_date as delivery_date,
        is_late,
        days_late

    from {{ ref('fct_order_lines') }}
    where is_delivered

),

daily as (

    select
        supplier_id,
        delivery_date,
        count(*) as lines_delivered,
        count(*) filter (where is_late) as late_lines,
        avg(days_late) as avg_days_late

    from delivered_lines
    group by supplier_id, delivery_date

),

rolling as (

    select
        *,
        sum(lines_delivered) over last_28_days as lines_delivered_28d,
        sum(late_lines) over last_28_days as late_lines_28d

    from daily
    window last_28_days as (
        partition by supplier_id
        order by delivery_date
        range between interval 27 day preceding and current row
    )

),

final as (

    select
        supplier_id,
        delivery_date,
        cast(lines_delivered as integer) as lines_delivered,
        cast(late_lines as integer) as late_lines,
        1 - cast(late_lines as double) / lines_delivered as on_time_rate,
        cast(lines_delivered_28d as integer) as lines_delivered_28d,
        1 - cast(late_lines_28d as double) / lines_delivered_28d as on_time_rate_28d,
        cast(avg_days_late as double) as avg_days_late

    from rolling

)

select * from final
