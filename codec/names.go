package codec

// MethodName maps a request's type to a net/rpc method name by upper-casing the
// first letter of each dot-separated part: "user.get" → "User.Get". It is the
// server's default mapping; a name that comes out ill-formed ("user..get")
// finds no method and is answered MethodNotFound.
func MethodName(typ string) string { return mapParts(typ, 'a', 'z', 'A'-'a') }

// TypeName maps a net/rpc method name to a request type by lower-casing the
// initial capital of each dot-separated part, or its initial acronym, as a
// JavaScript developer would spell it: "User.Get" → "user.get",
// "KV.Get" → "kv.get", "HTTPProxy.GetURL" → "httpProxy.getURL". It is the
// client's default mapping. A handler finds the method whatever the case of
// the type when the service was registered with rpcws's Handler.Register.
func TypeName(method string) string {
	var b []byte
	for start := 0; start < len(method); {
		end := start
		for end < len(method) && method[end] != '.' {
			end++
		}
		// The run of capitals that starts the part; before a lower-case
		// letter, its last capital starts the next word.
		n := 0
		for start+n < end && isUpper(method[start+n]) {
			n++
		}
		if n > 1 && start+n < end && isLower(method[start+n]) {
			n--
		}
		if n > 0 && b == nil {
			b = []byte(method)
		}
		for i := start; i < start+n; i++ {
			b[i] += 'a' - 'A'
		}
		start = end + 1
	}
	if b == nil {
		return method
	}
	return string(b)
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// mapParts shifts the ASCII letter in [lo, hi] that starts each part of s by
// delta. It returns s itself, without allocating, when nothing changes.
func mapParts(s string, lo, hi byte, delta int) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if (i == 0 || s[i-1] == '.') && lo <= s[i] && s[i] <= hi {
			if b == nil {
				b = []byte(s)
			}
			b[i] = byte(int(s[i]) + delta)
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// nameCache remembers a bounded number of short name mappings, so that a
// steady stream of calls to the same methods maps each name once and
// allocates nothing. What a peer can make it hold is bounded too:
// nameCacheSize names of at most maxCachedName bytes, about 8 KB. It is not
// safe for concurrent use.
type nameCache struct {
	fn   func(string) string
	m    map[string]namePair
	last namePair // the last name looked up: a connection mostly calls one method after another
}

type namePair struct{ from, to string }

const (
	nameCacheSize = 32
	maxCachedName = 64
)

// lookup returns key as a string and fn of it.
func (c *nameCache) lookup(key []byte) (from, to string) {
	if len(key) > 0 && string(key) == c.last.from {
		return c.last.from, c.last.to
	}
	if p, ok := c.m[string(key)]; ok {
		c.last = p
		return p.from, p.to
	}
	from = string(key)
	to = c.fn(from)
	if len(from) > maxCachedName {
		return from, to
	}
	// The first name is kept in last alone: a connection that calls one
	// method never makes the map.
	switch {
	case c.m == nil && c.last.from == "":
	case c.m == nil:
		c.m = map[string]namePair{c.last.from: c.last}
		fallthrough
	case len(c.m) < nameCacheSize:
		c.m[from] = namePair{from, to}
	}
	c.last = namePair{from, to}
	return from, to
}
