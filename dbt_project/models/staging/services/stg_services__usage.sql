-- One row per call of a factory service (the services' usage log, landed as raw.service_usage).

with

current_rows as (

    -- the newest delivery of each day (macro newest_delivery)
    {{ newest_delivery('services', 'service_usage') }}

),

renamed as (

    select
        called_at,
        cast(called_at as date) as called_date,
        caller,
        service,
        service_version,
        channel,
        rows as rows_sent,
        latency_ms,
        status,
        error,
        _source_file as source_file,
        _ingested_at as ingested_at

    from current_rows

)

select * from renamed
