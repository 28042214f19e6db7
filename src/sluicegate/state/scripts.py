"""The Lua scripts of the Redis backend. Each runs atomically on the server with Redis's own clock
(`TIME`, in microseconds); a test may pass the time instead (ARGV[1]) to move it by hand."""

# Every number handed to redis.call goes through fmt(): Lua would otherwise print large integers
# (microsecond timestamps) with 14 significant digits and lose precision.
_PRELUDE = """
local function fmt(x) return string.format('%d', x) end
local function clock()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function purge_window(z, h, edge)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', fmt(edge), 'LIMIT', 0, 500)
    if #old == 0 then return end
    local amounts = redis.call('HMGET', h, unpack(old))
    local freed = 0
    for j = 1, #amounts do freed = freed + (tonumber(amounts[j]) or 0) end
    redis.call('HINCRBY', h, '_sum', fmt(-freed))
    redis.call('HDEL', h, unpack(old))
    redis.call('ZREM', z, unpack(old))
  end
end
local function purge_reservations(b, z, now)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', fmt(now), 'LIMIT', 0, 500)
    if #old == 0 then return end
    local fields = {}
    for j = 1, #old do fields[j] = 'r:' .. old[j] end
    local amounts = redis.call('HMGET', b, unpack(fields))
    local freed = 0
    for j = 1, #amounts do freed = freed + (tonumber(amounts[j]) or 0) end
    redis.call('HINCRBY', b, 'reserved', fmt(-freed))
    redis.call('HDEL', b, unpack(fields))
    redis.call('ZREM', z, unpack(old))
  end
end
local function out_micros(tokens, pico)
  local p = tokens * pico
  local q = math.floor(p / 1000000)
  if q * 1000000 < p then q = q + 1 end
  return q
end
local function oldest(z)
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return tonumber(first[2])
end
"""

# KEYS: per rate scope (requests zset, tokens zset, tokens hash, live zset), then per budget
# (balance hash, reservations zset), then per candidate deployment (requests zset, tokens zset, tokens hash).
# ARGV: now, request id, window, #rates, #budgets, ttl, input tokens, input micros, output pico per granted
# token (every choice's), max output tokens, min output tokens, choices, then per rate (rpm, tpm,
# max concurrency), then per budget (usable micros, time to keep in ms or 0), then #deployments, 1 if one
# is required, and per deployment (rpm, tpm).
# Returns {admitted, grant, reserve, charged, refusal, refused index (a deployment's is #rates + its own),
#          retry-after us, now, per rate: requests, tokens, oldest request, oldest token entry;
#          per budget: spent, reserved; when admitted, the deployment slot taken (0: none)}.
# A balance without the field `seeded` (Redis lost it, or the period is new) refuses as 'unseeded': the
# caller reads its spend from the ledger, seeds it (SEED) and tries again.
ADMIT = (
    _PRELUDE
    + """
local now = clock()
local rid = ARGV[2]
local window = tonumber(ARGV[3])
local nrate = tonumber(ARGV[4])
local nbud = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local in_tok = tonumber(ARGV[7])
local in_mic = tonumber(ARGV[8])
local pico = tonumber(ARGV[9])
local max_out = tonumber(ARGV[10])
local min_out = tonumber(ARGV[11])
local choices = tonumber(ARGV[12])
local ra = 12
local ba = ra + 3 * nrate
local bk = 4 * nrate
local spent, reserved = {}, {}

local function budgets_tail()
  local out = {}
  for i = 1, nbud do out[#out + 1] = spent[i] or 0; out[#out + 1] = reserved[i] or 0 end
  return out
end
local function refuse(kind, idx, retry)
  local r = {0, 0, 0, 0, kind, idx, retry, now}
  for _, v in ipairs(budgets_tail()) do r[#r + 1] = v end
  return r
end

local function fit_in(room)
  if room < 0 then return -1 end
  if pico <= 0 or out_micros(max_out, pico) <= room then return max_out end
  local fit = math.floor(room * 1000000 / pico)
  while fit > 0 and out_micros(fit, pico) > room do fit = fit - 1 end
  return fit
end
local function tokens_retry(z, h, total, charged, tpm)
  local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  local excess = total + charged - tpm
  for j = 1, #entries, 2 do
    excess = excess - (tonumber(redis.call('HGET', h, entries[j])) or 0)
    if excess <= 0 then return math.max(0, tonumber(entries[j + 1]) + window - now) end
  end
  return window
end
local grant = max_out
local least = math.min(min_out, max_out)
local short, terminal = 0, 0
for i = 1, nbud do
  local b, z = KEYS[bk + 2 * i - 1], KEYS[bk + 2 * i]
  purge_reservations(b, z, now)
  local v = redis.call('HMGET', b, 'spent', 'reserved', 'seeded')
  if not v[3] then return refuse('unseeded', i, -1) end  -- a balance Redis lost, or never had
  spent[i], reserved[i] = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  local usable = tonumber(ARGV[ba + 2 * i - 1])
  local fit = fit_in(usable - spent[i] - reserved[i] - in_mic)
  if fit < grant then grant = fit; short = i end
  -- spending alone leaves no room for the least grant: only then is the refusal terminal
  if fit < least and terminal == 0 and fit_in(usable - spent[i] - in_mic) < least then terminal = i end
end
if nbud > 0 and grant < least then
  if terminal > 0 then return refuse('budget', terminal, -1) end
  return refuse('budget_reserved', short, -1)
end
local charged = in_tok + grant * choices
local edge = now - window

for i = 1, nrate do
  local k = 4 * (i - 1)
  local a = ra + 3 * (i - 1)
  local rpm, tpm, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if rpm > 0 then
    local z = KEYS[k + 1]
    redis.call('ZREMRANGEBYSCORE', z, '-inf', fmt(edge))
    local n = redis.call('ZCARD', z)
    if n + 1 > rpm then
      local e = redis.call('ZRANGE', z, n - rpm, n - rpm, 'WITHSCORES')
      return refuse('requests', i, math.max(0, tonumber(e[2]) + window - now))
    end
  end
  if tpm > 0 then
    local z, h = KEYS[k + 2], KEYS[k + 3]
    purge_window(z, h, edge)
    local total = tonumber(redis.call('HGET', h, '_sum')) or 0
    if charged > tpm then return refuse('tokens', i, -1) end
    if total + charged > tpm then return refuse('tokens', i, tokens_retry(z, h, total, charged, tpm)) end
  end
  if maxc > 0 then
    local z = KEYS[k + 4]
    redis.call('ZREMRANGEBYSCORE', z, '-inf', fmt(now))
    if redis.call('ZCARD', z) + 1 > maxc then return refuse('concurrency', i, 1000000) end
  end
end

-- deployments, best first: the first whose windows have room is the request's slot
local dk = bk + 2 * nbud
local da = ba + 2 * nbud
local ndep = tonumber(ARGV[da + 1]) or 0
local required = tonumber(ARGV[da + 2]) or 0
local slot = 0
local full_kind, full_idx, full_retry = nil, 0, -1
for j = 1, ndep do
  local rpm, tpm = tonumber(ARGV[da + 2 * j + 1]), tonumber(ARGV[da + 2 * j + 2])
  local rz, tz, th = KEYS[dk + 3 * j - 2], KEYS[dk + 3 * j - 1], KEYS[dk + 3 * j]
  local kind, retry = nil, -1
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', rz, '-inf', fmt(edge))
    local n = redis.call('ZCARD', rz)
    if n + 1 > rpm then
      local e = redis.call('ZRANGE', rz, n - rpm, n - rpm, 'WITHSCORES')
      kind, retry = 'requests', math.max(0, tonumber(e[2]) + window - now)
    end
  end
  if not kind and tpm > 0 then
    purge_window(tz, th, edge)
    local total = tonumber(redis.call('HGET', th, '_sum')) or 0
    if charged > tpm then
      kind = 'tokens'
    elseif total + charged > tpm then
      kind, retry = 'tokens', tokens_retry(tz, th, total, charged, tpm)
    end
  end
  if not kind then slot = j; break end
  if full_kind == nil or (retry >= 0 and (full_retry < 0 or retry < full_retry)) then
    full_kind, full_idx, full_retry = kind, nrate + j, retry
  end
end
if slot == 0 and required == 1 and full_kind then return refuse(full_kind, full_idx, full_retry) end

local reserve = 0
if nbud > 0 then reserve = in_mic + out_micros(grant, pico) end
local result = {1, grant, reserve, charged, '', 0, -1, now}
local keep = fmt(math.ceil(window / 1000) * 2)
for i = 1, nrate do
  local k = 4 * (i - 1)
  local a = ra + 3 * (i - 1)
  local rpm, tpm, maxc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local nreq, ntok, oreq, otok = 0, 0, -1, -1
  if rpm > 0 then
    redis.call('ZADD', KEYS[k + 1], fmt(now), rid)
    redis.call('PEXPIRE', KEYS[k + 1], keep)
    nreq = redis.call('ZCARD', KEYS[k + 1])
    oreq = oldest(KEYS[k + 1])
  end
  if tpm > 0 then
    redis.call('ZADD', KEYS[k + 2], fmt(now), rid)
    redis.call('HSET', KEYS[k + 3], rid, fmt(charged))
    ntok = redis.call('HINCRBY', KEYS[k + 3], '_sum', fmt(charged))
    redis.call('PEXPIRE', KEYS[k + 2], keep)
    redis.call('PEXPIRE', KEYS[k + 3], keep)
    otok = oldest(KEYS[k + 2])
  end
  if maxc > 0 then
    redis.call('ZADD', KEYS[k + 4], fmt(now + ttl), rid)
    redis.call('PEXPIRE', KEYS[k + 4], fmt(math.ceil(ttl / 1000)))
  end
  result[#result + 1] = nreq
  result[#result + 1] = ntok
  result[#result + 1] = oreq
  result[#result + 1] = otok
end
for i = 1, nbud do
  local b, z = KEYS[bk + 2 * i - 1], KEYS[bk + 2 * i]
  redis.call('HSET', b, 'r:' .. rid, fmt(reserve))
  reserved[i] = redis.call('HINCRBY', b, 'reserved', fmt(reserve))
  redis.call('ZADD', z, fmt(now + ttl), rid)
  local at = tonumber(ARGV[ba + 2 * i])
  if at > 0 then
    redis.call('PEXPIRE', b, fmt(at))
    redis.call('PEXPIRE', z, fmt(at))
  end
end
if slot > 0 then
  local rpm, tpm = tonumber(ARGV[da + 2 * slot + 1]), tonumber(ARGV[da + 2 * slot + 2])
  local rz, tz, th = KEYS[dk + 3 * slot - 2], KEYS[dk + 3 * slot - 1], KEYS[dk + 3 * slot]
  if rpm > 0 then
    redis.call('ZADD', rz, fmt(now), rid)
    redis.call('PEXPIRE', rz, keep)
  end
  if tpm > 0 then
    redis.call('ZADD', tz, fmt(now), rid)
    redis.call('HSET', th, rid, fmt(charged))
    redis.call('HINCRBY', th, '_sum', fmt(charged))
    redis.call('PEXPIRE', tz, keep)
    redis.call('PEXPIRE', th, keep)
  end
end
for _, v in ipairs(budgets_tail()) do result[#result + 1] = v end
result[#result + 1] = slot
return result
"""
)

# KEYS: per rate scope (tokens zset, tokens hash, live zset), per budget (balance hash, reservations
# zset, alerts hash), then, with a deployment, its (requests zset, tokens zset, tokens hash).
# ARGV: now, request id, window, #rates, #budgets, actual tokens, actual micros, deployment tokens or -1,
# #thresholds, thresholds in thousandths, then per budget (limit micros, time to keep in ms or 0).
# Returns {per budget: spent, reserved; then pairs of (budget index, threshold) newly crossed}.
SETTLE = (
    _PRELUDE
    + """
local now = clock()
local rid = ARGV[2]
local window = tonumber(ARGV[3])
local nrate = tonumber(ARGV[4])
local nbud = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local micros = tonumber(ARGV[7])
local dep_tokens = tonumber(ARGV[8])
local nth = tonumber(ARGV[9])
local ba = 9 + nth
local bk = 3 * nrate
for i = 1, nrate do
  local k = 3 * (i - 1)
  local h = KEYS[k + 2]
  local old = redis.call('HGET', h, rid)
  if old then
    redis.call('HSET', h, rid, fmt(tokens))
    redis.call('HINCRBY', h, '_sum', fmt(tokens - tonumber(old)))
  end
  redis.call('ZREM', KEYS[k + 3], rid)
end
local result, alerts = {}, {}
for i = 1, nbud do
  local b, z, al = KEYS[bk + 3 * i - 2], KEYS[bk + 3 * i - 1], KEYS[bk + 3 * i]
  local held = redis.call('HGET', b, 'r:' .. rid)
  if held then
    redis.call('HDEL', b, 'r:' .. rid)
    redis.call('HINCRBY', b, 'reserved', fmt(-tonumber(held)))
    redis.call('ZREM', z, rid)
  end
  local spent = redis.call('HINCRBY', b, 'spent', fmt(micros))
  local reserved = tonumber(redis.call('HGET', b, 'reserved')) or 0
  result[#result + 1] = spent
  result[#result + 1] = reserved
  local limit = tonumber(ARGV[ba + 2 * i - 1])
  for t = 1, nth do
    local milli = tonumber(ARGV[9 + t])
    if spent * 1000 >= milli * limit and redis.call('HSETNX', al, ARGV[9 + t], '1') == 1 then
      alerts[#alerts + 1] = i
      alerts[#alerts + 1] = milli
    end
  end
  local at = tonumber(ARGV[ba + 2 * i])
  if at > 0 then
    redis.call('PEXPIRE', b, fmt(at))
    redis.call('PEXPIRE', al, fmt(at))
  end
end
if dep_tokens >= 0 then
  local d = 3 * nrate + 3 * nbud
  local rz, tz, th = KEYS[d + 1], KEYS[d + 2], KEYS[d + 3]
  local keep = fmt(math.ceil(window / 1000) * 2)
  redis.call('ZREMRANGEBYSCORE', rz, '-inf', fmt(now - window))
  purge_window(tz, th, now - window)
  redis.call('ZADD', rz, fmt(now), rid)
  redis.call('ZADD', tz, fmt(now), rid)
  redis.call('HSET', th, rid, fmt(dep_tokens))
  redis.call('HINCRBY', th, '_sum', fmt(dep_tokens))
  redis.call('PEXPIRE', rz, keep)
  redis.call('PEXPIRE', tz, keep)
  redis.call('PEXPIRE', th, keep)
end
for _, v in ipairs(alerts) do result[#result + 1] = v end
return result
"""
)

# KEYS: requests zset, tokens zset, tokens hash. ARGV: now, window. Returns {requests, tokens}.
WINDOW_USE = (
    _PRELUDE
    + """
local now = clock()
local edge = now - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(edge))
purge_window(KEYS[2], KEYS[3], edge)
return {redis.call('ZCARD', KEYS[1]), tonumber(redis.call('HGET', KEYS[3], '_sum')) or 0}
"""
)

# KEYS: balance hash, reservations zset. ARGV: now. Returns {spent, reserved}.
BALANCE = (
    _PRELUDE
    + """
local now = clock()
purge_reservations(KEYS[1], KEYS[2], now)
local v = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
return {tonumber(v[1]) or 0, tonumber(v[2]) or 0}
"""
)

# KEYS: balance hash, reservations zset. ARGV: micros spent according to the ledger, time to keep in ms or 0,
# #held, then per reservation this instance holds for a request still in flight (request id, micros, expiry).
# Adds the ledger's spend once (settlements since Redis lost the balance are already in it, so an answer
# settled meanwhile may count twice: the balance errs high, never low) and puts back the seeding instance's
# reservations. Returns 1 if it seeded, 0 if another instance had.
SEED = """
if redis.call('HEXISTS', KEYS[1], 'seeded') == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[1])
redis.call('HSET', KEYS[1], 'seeded', '1')
for i = 1, tonumber(ARGV[3]) do
  local rid, amount, expiry = ARGV[1 + 3 * i], ARGV[2 + 3 * i], ARGV[3 + 3 * i]
  if redis.call('HSETNX', KEYS[1], 'r:' .. rid, amount) == 1 then
    redis.call('HINCRBY', KEYS[1], 'reserved', amount)
    redis.call('ZADD', KEYS[2], expiry, rid)
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: per rate scope (requests zset, tokens zset, tokens hash, live zset), then per budget (balance hash,
# reservations zset): the request's keys in one slot. ARGV: request id, #rates, #budgets.
# Takes back an admission in this slot when the request's other slot refused it (Redis Cluster).
RELEASE = """
local rid = ARGV[1]
local nrate, nbud = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nrate do
  local k = 4 * (i - 1)
  redis.call('ZREM', KEYS[k + 1], rid)
  local charged = redis.call('HGET', KEYS[k + 3], rid)
  if charged then
    redis.call('HINCRBY', KEYS[k + 3], '_sum', string.format('%d', -tonumber(charged)))
    redis.call('HDEL', KEYS[k + 3], rid)
  end
  redis.call('ZREM', KEYS[k + 2], rid)
  redis.call('ZREM', KEYS[k + 4], rid)
end
local bk = 4 * nrate
for i = 1, nbud do
  local b, z = KEYS[bk + 2 * i - 1], KEYS[bk + 2 * i]
  local held = redis.call('HGET', b, 'r:' .. rid)
  if held then
    redis.call('HDEL', b, 'r:' .. rid)
    redis.call('HINCRBY', b, 'reserved', string.format('%d', -tonumber(held)))
    redis.call('ZREM', z, rid)
  end
end
return 1
"""

# KEYS: per rate scope its tokens hash, then per budget its balance hash: the request's keys in one slot.
# ARGV: request id, #rates, #budgets, reservation, token charge. Lowers what an admission in this slot holds
# to what the request's other slot granted (Redis Cluster); never raises it.
SHRINK = """
local rid = ARGV[1]
local nrate, nbud = tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, charged = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, nrate do
  local old = tonumber(redis.call('HGET', KEYS[i], rid))
  if old and charged < old then
    redis.call('HSET', KEYS[i], rid, string.format('%d', charged))
    redis.call('HINCRBY', KEYS[i], '_sum', string.format('%d', charged - old))
  end
end
for i = 1, nbud do
  local b = KEYS[nrate + i]
  local held = tonumber(redis.call('HGET', b, 'r:' .. rid))
  if held and reserve < held then
    redis.call('HSET', b, 'r:' .. rid, string.format('%d', reserve))
    redis.call('HINCRBY', b, 'reserved', string.format('%d', reserve - held))
  end
end
return 1
"""
