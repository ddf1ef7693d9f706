-- Pipelined requests for wrk: every write sends DEPTH requests back to back
-- on one connection (wrk counts each response). Usage:
--   wrk -s bench/pipeline.lua http://127.0.0.1:PORT/plaintext -- 16
local depth = 16

init = function(args)
   depth = tonumber(args[1]) or depth
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil)
   end
   req = table.concat(r)
end

request = function()
   return req
end
