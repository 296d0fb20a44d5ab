-- sift/init.lua — the Lua side of the sift module. luaopen_sift (lua/l_module.c) runs this file with
-- the C module table as its argument, so `require "sift"` gives one table holding both the C functions
-- and the Lua library (data helpers, trainer, plots, help texts). Submodules may `require "sift"`.
local sift = ...
package.loaded["sift"] = sift

local function optional(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  if not tostring(mod):find("module '" .. name .. "' not found", 1, true) then error(mod, 0) end
  return nil
end

sift.data = optional "sift.data"
for _, name in ipairs { "sift.sets", "sift.metrics", "sift.train", "sift.analysis", "sift.landscape", "sift.plot", "sift.show", "sift.complete", "sift.help" } do
  local mod = optional(name)
  if type(mod) == "table" and mod.install then mod.install(sift) end
end
return sift
