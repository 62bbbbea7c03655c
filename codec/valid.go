package codec

import "encoding/binary"

// maxNestingDepth is encoding/json's limit on nested arrays and objects:
// json.Valid rejects deeper input, and so does validJSON.
const maxNestingDepth = 10000

// validJSON reports whether p is one valid JSON value, as json.Valid does,
// accepting and rejecting exactly what it does. It is faster on the strings
// that make most of a frame: json.Valid steps a state machine through an
// indirect call for every byte; validJSON runs a plain loop over a string's
// bytes, eight of them at a time.
func validJSON(p []byte) bool {
	i := scanValue(p, skipSpace(p, 0), 0)
	return i >= 0 && skipSpace(p, i) == len(p)
}

// scanValue returns the index just past the valid JSON value at p[i], or -1
// if there is none; depth is how many arrays and objects are around it, for
// the nesting limit.
func scanValue(p []byte, i, depth int) int {
	var small [32]byte
	open := small[:0] // '{' or '[' of each container around i, within the value
	for {
		if i >= len(p) {
			return -1
		}
		if c := p[i]; c == '{' || c == '[' {
			if depth+len(open) >= maxNestingDepth {
				return -1
			}
			var empty bool
			if i, empty = scanOpen(p, i); i < 0 {
				return -1
			}
			if !empty {
				open = append(open, c)
				continue // to the first member's value
			}
		} else if i = scanScalar(p, i); i < 0 {
			return -1
		}
		var more bool
		if i, open, more = scanAfter(p, i, open); !more {
			return i
		}
	}
}

// scanOpen scans the opening of the container at p[i]: its bracket, and an
// object's first key. It returns the index of the first member's value, or
// of what follows an empty container, which it reports; -1 if invalid.
func scanOpen(p []byte, i int) (int, bool) {
	c, end := p[i], byte('}')
	if c == '[' {
		end = ']'
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == end {
		return i + 1, true
	}
	if c == '{' {
		_, i = scanKey(p, i)
	}
	return i, false
}

// scanScalar scans the string, literal or number at p[i] and returns the
// index after it, or -1.
func scanScalar(p []byte, i int) int {
	switch p[i] {
	case '"':
		return scanString(p, i)
	case 't':
		return scanLiteral(p, i, "true")
	case 'f':
		return scanLiteral(p, i, "false")
	case 'n':
		return scanLiteral(p, i, "null")
	}
	return scanNumber(p, i)
}

// scanAfter scans what follows a value that ends at i, within the
// containers open: the ends of those that close there, then a comma and,
// in an object, the next key. It reports more, with the index of the next
// member's value; or it returns the end of the whole value (-1 if invalid).
func scanAfter(p []byte, i int, open []byte) (int, []byte, bool) {
	for len(open) > 0 {
		i = skipSpace(p, i)
		if i >= len(p) {
			return -1, open, false
		}
		top := open[len(open)-1]
		switch {
		case p[i] == ',':
			i = skipSpace(p, i+1)
			if top == '{' {
				_, i = scanKey(p, i)
			}
			return i, open, i >= 0
		case top == '{' && p[i] == '}', top == '[' && p[i] == ']':
			open = open[:len(open)-1]
			i++
		default:
			return -1, open, false
		}
	}
	return i, open, false
}

// scanKey scans an object's key and its colon at p[i], and the space after
// them: it returns the index just past the key, and that of the value, or
// -1 for both.
func scanKey(p []byte, i int) (keyEnd, value int) {
	if i >= len(p) || p[i] != '"' {
		return -1, -1
	}
	if keyEnd = scanString(p, i); keyEnd < 0 {
		return -1, -1
	}
	i = skipSpace(p, keyEnd)
	if i >= len(p) || p[i] != ':' {
		return -1, -1
	}
	return keyEnd, skipSpace(p, i+1)
}

// scanString returns the index just past the string at p[i], or -1 if it is
// not a valid one. Like json.Valid, it does not check UTF-8.
func scanString(p []byte, i int) int {
	for i++; i < len(p); i++ {
		// Skip eight plain bytes at a time: none a quote, a backslash
		// or a control character.
		for i+8 <= len(p) {
			v := binary.LittleEndian.Uint64(p[i:])
			if hasZero(v^(ones*'"'))|hasZero(v^(ones*'\\'))|hasLess(v, 0x20) != 0 {
				break
			}
			i += 8
		}
		if i >= len(p) {
			break
		}
		c := p[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(p) {
				return -1
			}
			switch p[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(p) {
					return -1
				}
				for _, h := range p[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
	return -1
}

// ones has a 1 in every byte.
const ones = 0x0101010101010101

// hasZero reports (as non-zero) whether a byte of v is zero; it may also
// report so, falsely, when one is. hasLess does the same for a byte below n
// (n <= 128).
func hasZero(v uint64) uint64         { return (v - ones) &^ v & (ones * 0x80) }
func hasLess(v uint64, n byte) uint64 { return (v - ones*uint64(n)) &^ v & (ones * 0x80) }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber returns the index just past the number at p[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(p []byte, i int) int {
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && '1' <= p[i] && p[i] <= '9':
		i = digits(p, i)
	default:
		return -1
	}
	if i < len(p) && p[i] == '.' {
		if j := digits(p, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if j := digits(p, i); j > i {
			i = j
		} else {
			return -1
		}
	}
	return i
}

func digits(p []byte, i int) int {
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		i++
	}
	return i
}

// scanLiteral returns the index just past lit at p[i], or -1.
func scanLiteral(p []byte, i int, lit string) int {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
