-- wrk script for benchmarks/density.sh: every request goes to a tenant drawn at random
-- from t0001 .. tN, at the same path.
--
--   wrk ... -s benchmarks/density.lua http://127.0.0.1:PORT -- N PATH

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  n = tonumber(args[1])
  path = args[2] or "/"
  -- Each thread draws its own sequence.
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  return wrk.format("GET", string.format("/t%04d%s", math.random(n), path))
end
