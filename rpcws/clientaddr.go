package rpcws

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rpcws/rpcws/codec"
)

// Per-client fairness: [HandlerOptions.MaxConnsPerClient] caps the
// connections of one client address, so that one address cannot take every
// place under MaxConns; [HandlerOptions.ClientAddr] says what a client's
// address is.

// minDefaultConnsPerClient is the smallest default of
// [HandlerOptions.MaxConnsPerClient]: an office or a campus behind one NAT
// address may hold this many browser tabs.
const minDefaultConnsPerClient = 100

// defaultConnsPerClient returns the default of MaxConnsPerClient for a
// handler with the given MaxConns: a tenth of it, so that one address holds
// at most a tenth of the places, but no fewer than 100 (or MaxConns, if
// smaller), so that many people behind one NAT address still connect. A
// handler with no MaxConns has no default per-client cap either.
func defaultConnsPerClient(maxConns int) int {
	if maxConns <= 0 {
		return -1
	}
	return max(maxConns/10, min(maxConns, minDefaultConnsPerClient))
}

// RemoteHost returns the host part of r.RemoteAddr: the address of the
// peer that opened the connection, without its port. It is the default of
// [HandlerOptions.ClientAddr]. An IPv4 address mapped into IPv6 (as a
// dual-stack listener reports it) is returned as IPv4. A RemoteAddr that is
// not host:port, such as a Unix socket's, is returned whole.
func RemoteHost(r *http.Request) string {
	if a, ok := remoteIP(r); ok {
		return a.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// remoteIP returns r.RemoteAddr's IP address, unmapped and without a zone.
func remoteIP(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// ForwardedFor returns a [HandlerOptions.ClientAddr] for a handler behind
// reverse proxies: it takes the client's address from the X-Forwarded-For
// header, but only as far as the proxies that wrote it are trusted.
//
// A request whose peer (r.RemoteAddr) is not in trusted came straight from
// its client, whatever its headers say: its address is [RemoteHost]. From a
// trusted proxy, the header's addresses are read from the right, the one the
// nearest proxy appended, leftwards; the first address that is not a trusted
// proxy is the client. A client can put anything at the left of the header,
// but not past the proxies, which append what they saw; so list every proxy
// of the chain, and only those. When every address is a trusted proxy (a
// client inside the proxies' network), the leftmost is the client. An entry
// that is not an IP address (nginx writes none, others may write
// "unknown") stops the walk: the proxy that passed it on is taken as the
// client, so all such clients share that proxy's cap.
//
// Multiple X-Forwarded-For header lines count as one list, in order. Entries
// may carry a port ("192.0.2.1:4711", "[2001:db8::1]:4711"), which is
// dropped. Trusted prefixes are matched against unmapped addresses: list
// IPv4 proxies as IPv4.
func ForwardedFor(trusted ...netip.Prefix) func(r *http.Request) string {
	prefixes := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		prefixes[i] = p.Masked()
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		client, ok := remoteIP(r)
		if !ok || !isTrusted(client) {
			return RemoteHost(r)
		}
		lines := r.Header.Values("X-Forwarded-For")
		for i := len(lines) - 1; i >= 0; i-- {
			rest := lines[i]
			for rest != "" {
				var entry string
				if j := strings.LastIndexByte(rest, ','); j >= 0 {
					rest, entry = rest[:j], rest[j+1:]
				} else {
					rest, entry = "", rest
				}
				entry = strings.TrimSpace(entry)
				if entry == "" {
					continue
				}
				a, ok := parseForwarded(entry)
				if !ok {
					return client.String()
				}
				client = a
				if !isTrusted(a) {
					return a.String()
				}
			}
		}
		return client.String()
	}
}

// parseForwarded parses one X-Forwarded-For entry: an IP address, bracketed
// or not for IPv6, with or without a port.
func parseForwarded(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// clientCounts counts the places, reserved or connected, that each client
// address holds, for MaxConnsPerClient, and holds each address's share of
// requests in flight (MaxInFlightPerClient). An address has an entry only
// while it holds a place, so there are never more entries than places. The
// handler's mutex guards it.
type clientCounts struct {
	max      int // MaxConnsPerClient; < 0: no cap, nothing counted
	inFlight int // MaxInFlightPerClient; <= 0: no share
	n        map[string]*clientEntry
}

// clientEntry is what one client address holds.
type clientEntry struct {
	places int
	share  *codec.Share // nil: none
}

// add takes a place for client and reports whether it was under its cap,
// with the address's share. The empty address (ServeConn's, or a
// ClientAddr that knows none) is not capped and has no share.
func (c *clientCounts) add(client string) (*codec.Share, bool) {
	if c.max < 0 || client == "" {
		return nil, true
	}
	e := c.n[client]
	if e == nil {
		if c.max == 0 {
			return nil, false
		}
		e = &clientEntry{share: codec.NewShare(c.inFlight)}
		if c.n == nil {
			c.n = make(map[string]*clientEntry)
		}
		c.n[client] = e
	} else if e.places >= c.max {
		return nil, false
	}
	e.places++
	return e.share, true
}

// remove gives back a place that add took.
func (c *clientCounts) remove(client string) {
	if c.max < 0 || client == "" {
		return
	}
	e := c.n[client]
	if e == nil {
		return
	}
	if e.places <= 1 {
		delete(c.n, client)
		return
	}
	e.places--
}

// releaseClient gives back the place of a connection of client that has
// ended.
func (h *Handler) releaseClient(client string) {
	h.mu.Lock()
	h.clients.remove(client)
	h.mu.Unlock()
}

// refuseUpgrade answers an upgrade that [Handler.reserveFor] refused with
// status, and logs it.
func (h *Handler) refuseUpgrade(w http.ResponseWriter, r *http.Request, client string, status int) {
	if status == http.StatusTooManyRequests {
		h.logAt(slog.LevelWarn, "refused an upgrade", "remote", r.RemoteAddr, "client", client,
			"error", "too many connections from this client (MaxConnsPerClient; behind a proxy, see ClientAddr)")
		http.Error(w, "rpcws: too many connections from this address", status)
		return
	}
	h.mu.Lock()
	closing := h.closing
	h.mu.Unlock()
	if closing {
		h.logAt(slog.LevelDebug, "refused an upgrade", "remote", r.RemoteAddr, "error", "shutting down")
	} else {
		h.logAt(slog.LevelError, "refused an upgrade", "remote", r.RemoteAddr, "error", "at capacity (MaxConns)")
	}
	http.Error(w, "rpcws: server at capacity or shutting down", status)
}
