-- wrk script: replays the minimal request list (bench/requests.tsv) round-robin, each thread from its
-- own offset, so wrk measures what the registry can serve for exactly the walk's requests.
local requests = {}
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter)
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("REPLAY_FILE")
  for line in io.lines(path) do
    local method, target, accept, range = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    local headers = {}
    if accept ~= "" then headers["Accept"] = accept end
    if range ~= "" then headers["Range"] = range end
    table.insert(requests, wrk.format(method, target, headers))
  end
  index = (tonumber(offset) * 7919) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end
