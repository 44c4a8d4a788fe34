-- wrk script for tools/bench's http_pipelined load: every write carries
-- `depth` GET / requests (the script's argument, default 16), the way
-- TechEmpower's plaintext test pipelines; wrk counts each answer.
init = function(args)
  local depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format("GET", "/")
  end
  req = table.concat(batch)
end

request = function()
  return req
end
