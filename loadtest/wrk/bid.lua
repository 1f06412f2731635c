-- wrk script: POST OpenRTB bid requests, rotating through a corpus of bodies.
--
--   CORPUS=DIR wrk -t1 -c64 -d10s -s loadtest/wrk/bid.lua http://127.0.0.1:18081
--   wrk -t1 -c64 -d10s -s loadtest/wrk/bid.lua http://127.0.0.1:18081 -- DIR
--   BODY=tests/fixtures/simple-banner.json wrk ... -s loadtest/wrk/bid.lua URL
--
-- Bodies: every regular file of the corpus directory (env CORPUS or the first script argument),
-- in name order; without a corpus, the single file named by env BODY.
-- Path: /openrtb2/bid/EXCHANGE when env EXCHANGE is set, else /openrtb2/bid.
-- Env STATUS=0 turns off the per-status counts (200/204/other), which cost the client a Lua
-- call per response; wrk's own "Non-2xx or 3xx responses" line remains.

local requests = {}
local next_index = 1
-- Per-thread status counts; a global so that done() can read it with thread:get.
counts = { ok = 0, no_bid = 0, other = 0 }
local count_statuses = os.getenv("STATUS") ~= "0"

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    error("bid.lua: cannot open " .. path .. ": " .. tostring(err))
  end
  local data = f:read("*a")
  f:close()
  return data
end

local function list_dir(dir)
  local files = {}
  local p = io.popen('find "' .. dir .. '" -maxdepth 1 -type f | LC_ALL=C sort')
  for path in p:lines() do
    files[#files + 1] = path
  end
  p:close()
  return files
end

local function load_bodies(args)
  local corpus = (args and args[1]) or os.getenv("CORPUS")
  if corpus and corpus ~= "" then
    local files = list_dir(corpus)
    if #files == 0 then
      error("bid.lua: corpus directory " .. corpus .. " has no files")
    end
    local bodies = {}
    for i, path in ipairs(files) do
      bodies[i] = read_file(path)
    end
    return bodies
  end
  local body = os.getenv("BODY")
  if not body or body == "" then
    error("bid.lua: set CORPUS (a directory) or BODY (a file)")
  end
  return { read_file(body) }
end

local function bid_path()
  local exchange = os.getenv("EXCHANGE")
  if exchange and exchange ~= "" then
    return "/openrtb2/bid/" .. exchange
  end
  return "/openrtb2/bid"
end

-- Main state: give every thread an id so threads start at different corpus positions.
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
  threads[thread_count] = thread
end

-- Thread state: load and pre-format every request once.
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local path = bid_path()
  for i, body in ipairs(load_bodies(args)) do
    requests[i] = wrk.format("POST", path, headers, body)
  end
  next_index = ((thread_id or 1) - 1) % #requests + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

-- wrk decides once, from the loaded script, whether to collect headers and bodies for a
-- response() function; define it only when the counts are wanted.
if count_statuses then
  function response(status, headers, body)
    if status == 200 then
      counts.ok = counts.ok + 1
    elseif status == 204 then
      counts.no_bid = counts.no_bid + 1
    else
      counts.other = counts.other + 1
    end
  end
end

-- Main state: sum the threads' counts. The line is parsed by loadtest/compare.sh.
function done(summary, latency, requests_done)
  if not count_statuses then
    return
  end
  local ok, no_bid, other = 0, 0, 0
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    ok = ok + c.ok
    no_bid = no_bid + c.no_bid
    other = other + c.other
  end
  io.write(string.format("status 200=%d 204=%d other=%d\n", ok, no_bid, other))
end
