-- wrk script: an authenticated Akeyless webhook that matches no ExternalSecret (the body of the
-- benchmark's saturation phase), as in BENCHMARKS.md. The service runs with
-- BASIC_AUTH_USER=demo BASIC_AUTH_PASSWORD=demo.
--   wrk -t1 -c32 -d4s -s benches/wrk/no-match.lua http://127.0.0.1:18000/webhook
wrk.method = "POST"
wrk.body = '[{"event_level":"info","event_type":"static-secret-updated","item_name":"/bench/none/saturation","item_id":1,"item_type":"STATIC_SECRET","payload":{}}]'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic ZGVtbzpkZW1v"
