-- sift/options.lua — checked(opts, who, known): the Lua library's public functions refuse option keys they do
-- not know (sift._check_options, lua/l_options.c), naming the line that called the public function (level 3:
-- this wrapper, the public function, its caller). Returns opts (nil stays nil). It does not check values.
return function(opts, who, known) return package.loaded.sift._check_options(opts, who, known, 3) end
