-- One row per ingested proof of delivery (an order line's delivery arrives days after the order).

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('erp', 'deliveries') }}

),

renamed as (

    select
        order_id || '-' || cast(line_number as varchar) as order_line_id,
        order_id,
        line_number,
        delivered_date,
        quantity_delivered,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
