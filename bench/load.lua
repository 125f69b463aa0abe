-- wrk script for bench/load: sends one fixed signed form POST over and over.
--
--   wrk ... -s bench/load.lua http://127.0.0.1:PORT/callbacks/crm -- PREFIX
--
-- PREFIX.body holds the form body and PREFIX.sig its X-Twilio-Signature (written by
-- `load_target serve`). At the end it prints one line for bench/load to read:
--   RESULT requests=N duration_us=N rps=N p50_us=N p99_us=N non2xx=N socket_errors=N

local function slurp(path)
   local file = assert(io.open(path, "rb"))
   local text = file:read("*a")
   file:close()
   return text
end

function init(args)
   local prefix = args[1]
   wrk.method = "POST"
   wrk.body = slurp(prefix .. ".body")
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.headers["X-Twilio-Signature"] = slurp(prefix .. ".sig")
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
      summary.requests, summary.duration,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99),
      e.status, e.connect + e.read + e.write + e.timeout))
end
