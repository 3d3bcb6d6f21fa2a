{{
    config(
        materialized='incremental',
        unique_key='order_line_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook="
            -- a corrected re-delivery that removed a line: the line leaves the product too (only days
            -- delivered more than once are looked at, so a night without corrections scans no history)
            delete from {{ this }}
            where order_date in (
                select _partition_date from {{ source('erp', 'transactions') }}
                group by _partition_date having count(distinct _ingested_at) > 1
            )
            and order_line_id not in (select order_line_id from {{ ref('stg_erp__order_lines') }})
        ",
    )
}}

{#-
    One row per order line with its delivery outcome and shipment delays.

    Incremental logic (the raw tables are append-only, so `_ingested_at` is a reliable watermark):
      * The table keeps, per line, when each input was ingested: ingested_at (the order line),
        delivery_ingested_at and telemetry_ingested_at. Their maxima over the table are the
        watermarks of the previous run, read here at compile time so they reach the warehouse as
        constants (DuckDB then prunes row groups by their min/max zone maps).
      * A run re-builds only the lines that are new, or whose delivery or telemetry was ingested
        after the watermark; these are deleted and re-inserted (delete+insert on order_line_id), so
        a line first loaded as open is updated in place, never duplicated, when its delivery lands.
      * The changed-line filter is applied to the staging views BEFORE any de-duplication window or
        aggregate, so history is neither recomputed nor rewritten; lines that did not change keep
        the row written by an earlier run.
      * A delivery or tracker reading whose order line has not landed yet is simply picked up when
        the line lands (new lines always join every delivery/reading known for them).
    `dbt build --full-refresh` rebuilds the table from all of history.
-#}

{%- set epoch = "timestamp '1900-01-01 00:00:00'" -%}
{%- set watermarks = {'lines': epoch, 'deliveries': epoch, 'telemetry': epoch} -%}
{%- if execute and is_incremental() -%}
    {%- set watermark_query -%}
        select
            max(ingested_at) as lines,
            max(delivery_ingested_at) as deliveries,
            max(telemetry_ingested_at) as telemetry
        from {{ this }}
    {%- endset -%}
    {%- set row = run_query(watermark_query).rows[0] -%}
    {%- for key in ['lines', 'deliveries', 'telemetry'] -%}
        {%- if row[key] is not none -%}
            {%- do watermarks.update({key: "timestamp '" ~ row[key] ~ "' - interval "
                ~ (var('order_lines_lookback_hours', 0) | int) ~ " hour"}) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

with

{% if is_incremental() %}
changed_lines as (

    -- order lines ingested since the last run
    select order_line_id
    from {{ ref('stg_erp__order_lines') }}
    where ingested_at > {{ watermarks['lines'] }}

    union

    -- lines whose delivery was ingested since the last run
    select order_line_id
    from {{ ref('stg_erp__deliveries') }}
    where ingested_at > {{ watermarks['deliveries'] }}

    union

    -- lines of orders with tracker readings ingested since the last run
    select order_line_id
    from {{ ref('stg_erp__order_lines') }}
    where order_id in (
        select order_id
        from {{ ref('stg_telemetry__shipment_readings') }}
        where ingested_at > {{ watermarks['telemetry'] }}
    )

),
{% endif %}

order_lines as (

    select *
    from {{ ref('stg_erp__order_lines') }}
    {% if is_incremental() -%}
    where order_line_id in (select order_line_id from changed_lines)
    {% endif -%}
    -- a re-delivered line counts once: the latest ingested version wins
    qualify row_number() over (
        partition by order_line_id
        order by ingested_at desc, source_row_number desc
    ) = 1

),

deliveries as (

    -- the latest proof of delivery of each line
    select
        order_line_id,
        delivered_date,
        ingested_at as delivery_ingested_at

    from {{ ref('stg_erp__deliveries') }}
    where order_line_id in (select order_line_id from order_lines)
    qualify row_number() over (
        partition by order_line_id
        order by ingested_at desc, source_row_number desc
    ) = 1

),

shipment_delays as (

    -- delay events are cumulative per shipment: take each shipment's highest count, then add up
    -- the shipments of the order
    select
        order_id,
        sum(delay_events) as shipment_delay_events,
        max(ingested_at) as telemetry_ingested_at

    from (
        select
            order_id,
            shipment_id,
            max(cumulative_delay_events) as delay_events,
            max(ingested_at) as ingested_at

        from {{ ref('stg_telemetry__shipment_readings') }}
        where order_id in (select order_id from order_lines)
        group by order_id, shipment_id
    ) as per_shipment
    group by order_id

),

final as (

    select
        order_lines.order_line_id,
        order_lines.order_id,
        order_lines.line_number,
        order_lines.ordered_at,
        order_lines.order_date,
        order_lines.customer_key,
        order_lines.region,
        order_lines.product_id,
        order_lines.warehouse_id,
        order_lines.supplier_id,
        order_lines.channel,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.discount_pct,
        cast(
            round(order_lines.quantity * order_lines.unit_price * (1 - order_lines.discount_pct), 2)
            as double
        ) as net_amount,
        order_lines.promised_date,
        deliveries.delivered_date,
        deliveries.delivered_date is not null as is_delivered,
        case
            when deliveries.delivered_date is not null
                then deliveries.delivered_date > order_lines.promised_date
        end as is_late,
        case
            when deliveries.delivered_date is not null
                then cast(
                    greatest(date_diff('day', order_lines.promised_date, deliveries.delivered_date), 0)
                    as integer
                )
        end as days_late,
        cast(shipment_delays.shipment_delay_events as integer) as shipment_delay_events,
        order_lines.ingested_at,
        deliveries.delivery_ingested_at,
        shipment_delays.telemetry_ingested_at

    from order_lines
    left join deliveries
        on order_lines.order_line_id = deliveries.order_line_id
    left join shipment_delays
        on order_lines.order_id = shipment_delays.order_id

)

select * from final
