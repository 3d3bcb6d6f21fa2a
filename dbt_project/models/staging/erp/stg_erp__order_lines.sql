-- One row per ingested ERP order line. Renames, casts and pseudonymisation only:
-- customer_id becomes customer_key; customer_name and customer_email are not selected.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('erp', 'transactions') }}

),

renamed as (

    select
        order_id || '-' || cast(line_number as varchar) as order_line_id,
        order_id,
        line_number,
        ordered_at,
        cast(ordered_at as date) as order_date,
        {{ pseudonymise('customer_id') }} as customer_key,
        region,
        product_id,
        warehouse_id,
        supplier_id,
        channel,
        quantity,
        unit_price,
        discount_pct,
        promised_date,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
