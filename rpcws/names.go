package rpcws

import (
	"errors"
	"net/rpc"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/rpcws/rpcws/codec"
)

// Register publishes rcvr's methods on the handler's *rpc.Server, as
// [rpc.Server.Register] does, and lets the handler find them whatever the
// case of a request's type: a service HTTPProxy is reached as
// "httpproxy.geturl" as well as "httpProxy.getURL" or "HTTPProxy.GetURL".
// Services registered on the *rpc.Server directly are reached by the
// spellings that JavaScript developers and the Go client use: the default
// mapping ([codec.MethodName]: "user.get" → "User.Get"), and acronyms in
// lower case ("kv.get" → "KV.Get", "httpProxy.getURL" →
// "HTTPProxy.GetURL").
func (h *Handler) Register(rcvr any) error {
	return h.RegisterName(reflect.Indirect(reflect.ValueOf(rcvr)).Type().Name(), rcvr)
}

// RegisterName is [Handler.Register] with the service's name given, as
// [rpc.Server.RegisterName] takes it.
func (h *Handler) RegisterName(name string, rcvr any) error {
	if err := h.srv.RegisterName(name, rcvr); err != nil {
		return err
	}
	h.names.add(name, reflect.TypeOf(rcvr))
	return nil
}

// methodNames maps request types to the methods of the handler's server.
// Services registered through the handler are found by the lower-case
// spelling of their names (a spelling that two methods share is ambiguous,
// and left to the rest). Other services are found by asking the server,
// spelling by spelling, which of a few likely names it serves: the default
// mapping first, then each part's leading lower-case run in capitals, as
// [codec.TypeName] spells acronyms ("kv.get" → "KV.Get", "room.id" →
// "Room.ID", "httpProxy.getURL" → "HTTPProxy.GetURL"). What it finds is
// remembered, a bounded number of names.
type methodNames struct {
	srv *rpc.Server

	mu      sync.RWMutex
	byLower map[string]string // "kv.get" → "KV.Get"; "" when ambiguous
	found   map[string]string // a type → the method a probe found for it
}

// maxFound bounds what methodNames remembers of its probes.
const maxFound = 4096

// add records the methods of rcvr's type that net/rpc serves: exported,
// with two arguments, the second a pointer, and an error result.
func (n *methodNames) add(service string, t reflect.Type) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byLower == nil {
		n.byLower = make(map[string]string)
	}
	errorType := reflect.TypeFor[error]()
	for m := range t.Methods() {
		mt := m.Type
		if !m.IsExported() || mt.NumIn() != 3 || mt.In(2).Kind() != reflect.Pointer ||
			mt.NumOut() != 1 || mt.Out(0) != errorType {
			continue
		}
		name := service + "." + m.Name
		lower := strings.ToLower(name)
		if prev, ok := n.byLower[lower]; ok && prev != name {
			n.byLower[lower] = "" // two methods answer to it
			continue
		}
		n.byLower[lower] = name
	}
}

// methodName maps a request's type to a method.
func (n *methodNames) methodName(typ string) string {
	n.mu.RLock()
	name := n.byLower[strings.ToLower(typ)]
	if name == "" {
		name = n.found[typ]
	}
	n.mu.RUnlock()
	if name != "" {
		return name
	}
	def := codec.MethodName(typ)
	if n.srv == nil {
		return def
	}
	for _, cand := range candidates(typ, def) {
		if serves(n.srv, cand) {
			n.mu.Lock()
			if len(n.found) < maxFound {
				if n.found == nil {
					n.found = make(map[string]string)
				}
				n.found[typ] = cand
			}
			n.mu.Unlock()
			return cand
		}
	}
	return def
}

// candidates returns the likely method names of a type "service.method":
// def, the default mapping, then the spellings with either part's leading
// lower-case run in capitals. Types of another shape have def alone.
func candidates(typ, def string) []string {
	svc, m, ok := strings.Cut(typ, ".")
	if !ok || strings.Contains(m, ".") || svc == "" || m == "" || len(typ) > codec.MaxTypeLength {
		return []string{def}
	}
	dsvc, dm, _ := strings.Cut(def, ".")
	asvc, am := acronym(svc), acronym(m)
	out := []string{def}
	for _, c := range []string{dsvc + "." + am, asvc + "." + dm, asvc + "." + am} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// acronym returns s with its leading run of lower-case ASCII letters in
// capitals: "kv" → "KV", "httpProxy" → "HTTPProxy".
func acronym(s string) string {
	n := 0
	for n < len(s) && 'a' <= s[n] && s[n] <= 'z' {
		n++
	}
	return strings.ToUpper(s[:n]) + s[n:]
}

// serves reports whether srv has the method "Service.Method". It asks srv
// itself, through [rpc.Server.ServeRequest] with a codec of its own that
// fails to read the request's data: srv then decodes nothing and calls
// nothing, and tells by whether it asks for the data at all.
func serves(srv *rpc.Server, method string) bool {
	p := &probe{method: method}
	srv.ServeRequest(p)
	return p.found
}

// probe is the one-request codec of serves.
type probe struct {
	method string
	found  bool
}

var errProbe = errors.New("rpcws: probing for a method")

func (p *probe) ReadRequestHeader(r *rpc.Request) error {
	r.ServiceMethod, r.Seq = p.method, 0
	return nil
}

func (p *probe) ReadRequestBody(x any) error {
	if x == nil { // srv discards the body of a method it lacks
		return nil
	}
	p.found = true
	return errProbe
}

func (*probe) WriteResponse(*rpc.Response, any) error { return nil }
func (*probe) Close() error                           { return nil }
