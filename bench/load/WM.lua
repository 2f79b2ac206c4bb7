-- Workload WM of bench/bench.sh (see its header).
dofile(os.getenv("TD_LOAD") .. "/common.lua")
local f = io.open(os.getenv("TD_WORK") .. "/file.txt", "rb")
local file = f:read("*a")
f:close()
local counter = 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads - 1)
end
function init(args)
  wrong = 0
  free = {}
  local n = 0
  for c in io.lines(os.getenv("TD_COOKIES")) do
    if n % 2 == index then table.insert(free, c) end
    n = n + 1
  end
end
function request()
  counter = counter + 1
  local cookie = table.remove(free, 1) or "none"
  local body = "--XyZ\r\nContent-Disposition: form-data; name=\"textfile\"; filename=\"bench.txt\"\r\n" ..
    "Content-Type: text/plain\r\n\r\nupload " .. index .. "-" .. counter .. "\n" .. file .. "\r\n--XyZ--\r\n"
  return wrk.format("POST", "/", { ["Cookie"] = "id=" .. cookie,
    ["Content-Type"] = "multipart/form-data; boundary=XyZ" }, body)
end
function response(status, headers, body)
  local set = nil
  for name, value in pairs(headers) do
    if string.lower(name) == "set-cookie" then set = string.match(value, "^id=([^;]+)") end
  end
  if status ~= 303 or set == nil then wrong = wrong + 1 end
  if set ~= nil then table.insert(free, set) end
end
