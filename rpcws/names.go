package rpcws

import (
	"reflect"
	"strings"
	"sync"

	"github.com/rpcws/rpcws/codec"
)

// Register publishes rcvr's methods on the handler's *rpc.Server, as
// [rpc.Server.Register] does, and lets the handler find them whatever the
// case of a request's type: a service KV is reached as "kv.get" (the
// spelling a JavaScript developer writes, and the one the Go client sends)
// as well as "kV.get" or "KV.Get". Services registered on the *rpc.Server
// directly are reached by the default mapping alone ([codec.MethodName]:
// "user.get" → "User.Get").
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

// methodNames finds the methods of registered services by the lower-case
// spelling of their names. A spelling that two methods share is ambiguous
// and left to the default mapping.
type methodNames struct {
	mu      sync.RWMutex
	byLower map[string]string // "kv.get" → "KV.Get"; "" when ambiguous
}

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

// methodName maps a request's type to a method: the registered method of
// that spelling in any case, or else, when there is none or the spelling is
// ambiguous, the default mapping.
func (n *methodNames) methodName(typ string) string {
	n.mu.RLock()
	name := n.byLower[strings.ToLower(typ)]
	n.mu.RUnlock()
	if name == "" {
		return codec.MethodName(typ)
	}
	return name
}
