-- One row per ingested shipment tracker reading.

with

current_rows as (

    -- the newest delivery of each day: a correction supersedes what it corrects (macro newest_delivery)
    {{ newest_delivery('telemetry', 'telemetry') }}

),

renamed as (

    select
        event_id,
        shipment_id,
        order_id,
        recorded_at,
        region,
        temperature_c as cargo_temperature_c,
        delay_events as cumulative_delay_events,
        _source_file as source_file,
        _row_number as source_row_number,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
