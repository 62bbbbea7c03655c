package rpcws

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest topic or user name, in Unicode code points.
const MaxNameLen = 128

// ErrBadName is the error of a topic or user name that is empty, longer
// than [MaxNameLen] code points, or not valid UTF-8.
var ErrBadName = errors.New("rpcws: a topic or user name is 1 to 128 characters of valid UTF-8")

// validName reports whether s is a topic or user name.
func validName(s string) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= MaxNameLen
}

// addrKind is what an [Address] names.
type addrKind uint8

const (
	kindNone  addrKind = iota // the zero Address: no one
	kindAll                   // every connection
	kindTopic                 // the members of a topic
	kindUser                  // the connections of a user
	kindPeer                  // one connection, by ID
)

// Address says which connections a published event goes to, on every
// replica: [All], a [Topic], a [User] or one connection ([ToPeer]),
// optionally except one connection (see [Address.Except]).
type Address struct {
	kind   addrKind
	name   string
	except string // a peer's ID, or ""
}

// All addresses every connection.
func All() Address { return Address{kind: kindAll} }

// Topic addresses the members of a topic (see [Peer.Join]). The name is
// taken literally: "room.*" is a topic, not a pattern.
func Topic(name string) Address { return Address{kind: kindTopic, name: name} }

// User addresses every connection of a user: those whose identity
// [HandlerOptions.UserName] maps to name.
func User(name string) Address { return Address{kind: kindUser, name: name} }

// ToPeer addresses one connection by its [Peer.ID], on whichever replica
// serves it.
func ToPeer(id string) Address { return Address{kind: kindPeer, name: id} }

// Except returns the address without connection p, typically the sender.
// A nil p changes nothing.
func (a Address) Except(p *Peer) Address {
	if p != nil {
		a.except = p.id
	}
	return a
}

func (a Address) String() string {
	var s string
	switch a.kind {
	case kindAll:
		s = "all"
	case kindTopic:
		s = "topic " + strconv.Quote(a.name)
	case kindUser:
		s = "user " + strconv.Quote(a.name)
	case kindPeer:
		s = "peer " + a.name
	default:
		s = "no address"
	}
	if a.except != "" {
		s += " except " + a.except
	}
	return s
}

// Subjects on the broker. Names are escaped so that every engine takes them
// literally: a NATS subject treats '.', '*', '>' and white space specially.
const (
	subjectAll   = "rpcws.all"
	subjectTopic = "rpcws.t."
	subjectUser  = "rpcws.u."
	subjectNode  = "rpcws.n."
)

// subject returns the broker subject that carries events to a, and for a
// peer address the peer's ID, which the receiving replica looks up. It is
// the one place where addresses become subjects.
func (a Address) subject() (subject, target string, err error) {
	switch a.kind {
	case kindAll:
		return subjectAll, "", nil
	case kindTopic, kindUser:
		if !validName(a.name) {
			return "", "", fmt.Errorf("%w: %s", ErrBadName, a)
		}
		if a.kind == kindUser {
			return subjectUser + escapeName(a.name), "", nil
		}
		return subjectTopic + escapeName(a.name), "", nil
	case kindPeer:
		i := strings.LastIndexByte(a.name, '.')
		if i <= 0 {
			return "", "", fmt.Errorf("rpcws: publish: not a peer ID: %q", a.name)
		}
		return nodeSubject(a.name[:i]), a.name, nil
	}
	return "", "", errors.New("rpcws: publish: the zero Address addresses no one")
}

// nodeSubject is the subject of one replica, by its node ID.
func nodeSubject(node string) string { return subjectNode + escapeName(node) }

// mustSubject is subject for a topic or user address whose name is valid.
func (a Address) mustSubject() string {
	s, _, err := a.subject()
	if err != nil {
		panic(err)
	}
	return s
}

// escapeName maps a name to one subject token: ASCII letters, digits and '-'
// stay, every other byte becomes '_' and two hex digits. The mapping is one
// to one.
func escapeName(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
