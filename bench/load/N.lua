-- Workload N of bench/bench.sh (see its header).
dofile(os.getenv("TD_LOAD") .. "/common.lua")
local f = io.open(os.getenv("TD_WORK") .. "/body.bin", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=XyZ"
function response(status, headers, body)
  if status ~= 303 then wrong = wrong + 1 end
end
