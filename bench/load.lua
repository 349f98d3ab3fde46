-- wrk script for every load of the benchmark; BENCH_MODE picks the requests.
--
-- Tokens and ids come from the Lua table that bench/harness.py writes (BENCH_TOKENS).
-- Writes never collide: each wrk thread owns a disjoint set of accounts (or of users, on a
-- single-account load), and a user is unassigned only once its assignment answered, so every
-- request of the bench is expected to answer 2xx; anything else is counted by response() and
-- reported as an error.

local data = dofile(os.getenv("BENCH_TOKENS"))
local mode = os.getenv("BENCH_MODE")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local lag = tonumber(os.getenv("BENCH_LAG") or "64")
local run_id = os.getenv("BENCH_RUN") or tostring(os.time())
-- bench/fleet.py runs one wrk per instance at once: each is given the thread numbers after
-- the other's, so that their writes never collide either.
local tid_offset = tonumber(os.getenv("BENCH_TID_OFFSET") or "0")

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid + tid_offset)
  table.insert(threads, thread)
end

local prefix = "/v1/accounts/"
local accounts, users
by_id = {}
local puts, dels, counter = 0, 0, 0
errors, codes, sample = 0, "", ""
local code_counts = {}

local function bearer(tok)
  return { ["Authorization"] = "Bearer " .. tok }
end

function init(args)
  math.randomseed(os.time() * 1000 + tid * 7919)
  accounts = {}
  by_id[data.big.id], by_id[data.small.id] = data.big, data.small
  for _, a in ipairs(data.acc) do by_id[a.id] = a end
  for i = tid, #data.acc, nthreads do
    table.insert(accounts, data.acc[i])
  end
  if mode == "assign_big" or mode == "assign_small" then
    local a = (mode == "assign_big") and data.big or data.small
    users = {}
    for u = a.first_free + tid - 1, a.users, nthreads do
      table.insert(users, tostring(u))
    end
  end
end

-- Assign/unassign. A user is unassigned only after its PUT answered 201: the PUT carries
-- X-Request-ID "put.<account>.<user>", which the server echoes, and response() queues it. Once
-- `lag` assignments are outstanding, the next request is the DELETE of the oldest one.
local assigned, q_head, q_tail = {}, 1, 0

local function assign_cycle(account_of, user_of, nslots)
  if q_tail >= q_head and puts - dels >= lag then
    local item = assigned[q_head]
    assigned[q_head] = nil
    q_head = q_head + 1
    dels = dels + 1
    local a_id, user = string.match(item, "^([^.]+)%.(.+)$")
    local path = prefix .. a_id .. "/conversations/agents/" .. user
    return wrk.format("DELETE", path, bearer(by_id[a_id].admin))
  end
  local s = puts % nslots
  puts = puts + 1
  local a, user = account_of(s), user_of(s)
  local headers = bearer(a.admin)
  headers["X-Request-ID"] = "put." .. a.id .. "." .. user
  return wrk.format("PUT", prefix .. a.id .. "/conversations/agents/" .. user, headers)
end

function request()
  if mode == "hot" then
    local a = data.acc[math.random(#data.acc)]
    local path = prefix .. a.id .. "/conversations/agents/" .. math.random(data.users)
    return wrk.format("GET", path, bearer(a.tokens[math.random(#a.tokens)]))
  elseif mode == "hot_warm" then
    -- The inbox's page loads of 500 signed-in users, each asking of itself: a working set
    -- that each worker's cache holds (100 accounts x their 5 users with tokens).
    local a = data.acc[math.random(math.min(100, #data.acc))]
    local i = math.random(#a.tokens)
    local path = prefix .. a.id .. "/conversations/agents/" .. data.token_users[i]
    return wrk.format("GET", path, bearer(a.tokens[i]))
  elseif mode == "hot_big" or mode == "hot_small" then
    local a = (mode == "hot_big") and data.big or data.small
    local path = prefix .. a.id .. "/conversations/agents/" .. math.random(a.users)
    return wrk.format("GET", path, bearer(a.tokens[math.random(#a.tokens)]))
  elseif mode == "assign" then
    -- Slots run user-major, so consecutive requests go to different accounts.
    local n = #accounts
    local nfree = data.users - data.first_free + 1
    return assign_cycle(
      function(s) return accounts[s % n + 1] end,
      function(s) return data.first_free + (math.floor(s / n) % nfree) end,
      n * nfree)
  elseif mode == "assign_big" or mode == "assign_small" then
    local a = (mode == "assign_big") and data.big or data.small
    return assign_cycle(
      function(s) return a end,
      function(s) return users[s + 1] end,
      #users)
  elseif mode == "quote" then
    local a = data.acc[math.random(#data.acc)]
    local body = '{"seats": ' .. (20 + math.random(20)) .. '}'
    local headers = bearer(a.admin)
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", prefix .. a.id .. "/conversations/quotes", headers, body)
  elseif mode == "preview" then
    local a = data.acc[math.random(#data.acc)]
    local path = prefix .. a.id .. "/conversations/quote-preview?seats=" .. (math.random(40))
    return wrk.format("GET", path, bearer(a.admin))
  elseif mode == "purchase" then
    -- Round robin over this thread's accounts: the k-th visit raises the total to 20 + k.
    local n = #accounts
    local a = accounts[counter % n + 1]
    local seats = data.seats + math.floor(counter / n) + 1
    counter = counter + 1
    local headers = bearer(a.primary)
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = "bench-" .. run_id .. "-" .. tid .. "-" .. counter
    local body = '{"seats": ' .. seats .. '}'
    return wrk.format("POST", prefix .. a.id .. "/conversations/purchases", headers, body)
  elseif mode == "pages_first" or mode == "pages_deep" then
    local a = data.big
    local path = prefix .. a.id .. "/conversations/agents?limit=" .. data.page_limit
    if mode == "pages_deep" then
      path = path .. "&cursor=" .. data.deep_cursor
    end
    return wrk.format("GET", path, bearer(a.admin))
  end
  error("unknown BENCH_MODE " .. tostring(mode))
end

function response(status, headers, body)
  if status == 201 then
    local rid = headers["x-request-id"] or headers["X-Request-ID"]
    if rid and string.sub(rid, 1, 4) == "put." then
      q_tail = q_tail + 1
      assigned[q_tail] = string.sub(rid, 5)
    end
  end
  if status < 200 or status > 299 then
    errors = errors + 1
    code_counts[status] = (code_counts[status] or 0) + 1
    local parts = {}
    for c, k in pairs(code_counts) do table.insert(parts, c .. "x" .. k) end
    codes = table.concat(parts, " ")
    if sample == "" then sample = string.sub(body or "", 1, 300) end
  end
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local errs, all_codes, first = 0, {}, ""
  for _, t in ipairs(threads) do
    errs = errs + (t:get("errors") or 0)
    local c = t:get("codes") or ""
    if c ~= "" then table.insert(all_codes, c) end
    if first == "" then first = t:get("sample") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "non2xx": %d, "socket_errors": %d, "codes": %s, "sample": %s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errs,
    e.connect + e.read + e.write + e.timeout,
    json_string(table.concat(all_codes, " ")), json_string(first)))
end
