package workerproc

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// Values leave a run only as JSON, written here the way JSON.stringify would write
// them, with two budgets checked as the bytes are produced: nesting depth and size.
// A script's value never reaches Go as a Go object, and a huge or deep value is
// refused before it is fully built.

var (
	errTooDeep  = errors.New("value nests deeper than the limit")
	errTooLarge = errors.New("value is larger than the limit")
	errCircular = errors.New("value has a circular reference")
	errBigInt   = errors.New("a BigInt cannot be serialized to JSON")
)

// jsonWriter serializes goja values. It is used for results, tool arguments, console
// arguments and the script-visible JSON.stringify.
type jsonWriter struct {
	rt       *goja.Runtime
	buf      []byte
	maxDepth int
	maxBytes int
	stack    []*goja.Object // objects being written, for cycle detection

	replacer goja.Callable   // JSON.stringify's function replacer
	allow    map[string]bool // JSON.stringify's array replacer
	indent   string
}

// encode writes v and reports whether it produced anything (undefined, functions and
// symbols at the top produce nothing, as in JSON.stringify).
func (w *jsonWriter) encode(v goja.Value) (bool, error) {
	holder := w.rt.NewObject()
	if err := holder.Set("", v); err != nil {
		return false, err
	}
	return w.value(holder, "", v, 0)
}

func (w *jsonWriter) value(holder *goja.Object, key string, v goja.Value, depth int) (bool, error) {
	v, err := w.prepare(holder, key, v)
	if err != nil {
		return false, err
	}
	if v == nil || goja.IsUndefined(v) {
		return false, nil
	}
	if goja.IsNull(v) {
		return true, w.raw("null")
	}
	if o, ok := v.(*goja.Object); ok {
		return w.object(o, depth)
	}
	return true, w.primitive(v)
}

// prepare applies toJSON and the replacer, in JSON.stringify's order.
func (w *jsonWriter) prepare(holder *goja.Object, key string, v goja.Value) (goja.Value, error) {
	if o, ok := v.(*goja.Object); ok {
		if fn, ok := goja.AssertFunction(o.Get("toJSON")); ok {
			out, err := fn(o, w.rt.ToValue(key))
			if err != nil {
				return nil, err
			}
			v = out
		}
	}
	if w.replacer != nil {
		return w.replacer(holder, w.rt.ToValue(key), v)
	}
	return v, nil
}

func (w *jsonWriter) primitive(v goja.Value) error {
	if _, ok := v.(*goja.Symbol); ok {
		return nil
	}
	switch x := v.Export().(type) {
	case *big.Int:
		return errBigInt
	case string:
		return w.str(x)
	case bool:
		return w.raw(strconv.FormatBool(x))
	case int64:
		return w.raw(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return w.raw("null")
		}
		return w.raw(v.String())
	}
	return w.str(v.String())
}

func (w *jsonWriter) object(o *goja.Object, depth int) (bool, error) {
	if _, ok := goja.AssertFunction(o); ok {
		return false, nil
	}
	switch o.ClassName() {
	case "Number", "String", "Boolean":
		return true, w.primitive(w.rt.ToValue(o.Export()))
	}
	if depth >= w.maxDepth {
		return false, errTooDeep
	}
	for _, seen := range w.stack {
		if seen == o {
			return false, errCircular
		}
	}
	w.stack = append(w.stack, o)
	defer func() { w.stack = w.stack[:len(w.stack)-1] }()
	if o.ClassName() == "Array" {
		return true, w.array(o, depth+1)
	}
	return true, w.plain(o, depth+1)
}

func (w *jsonWriter) array(o *goja.Object, depth int) error {
	n := lengthOf(o)
	if err := w.raw("["); err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		if err := w.separator(i > 0, depth); err != nil {
			return err
		}
		key := strconv.FormatInt(i, 10)
		wrote, err := w.value(o, key, o.Get(key), depth)
		if err != nil {
			return err
		}
		if !wrote {
			if err := w.raw("null"); err != nil {
				return err
			}
		}
	}
	return w.close("]", n > 0, depth)
}

func (w *jsonWriter) plain(o *goja.Object, depth int) error {
	if err := w.raw("{"); err != nil {
		return err
	}
	count := 0
	for _, k := range o.Keys() {
		if w.allow != nil && !w.allow[k] {
			continue
		}
		mark := len(w.buf)
		if err := w.separator(count > 0, depth); err != nil {
			return err
		}
		if err := w.member(k); err != nil {
			return err
		}
		wrote, err := w.value(o, k, o.Get(k), depth)
		if err != nil {
			return err
		}
		if !wrote {
			w.buf = w.buf[:mark] // undefined members are dropped
			continue
		}
		count++
	}
	return w.close("}", count > 0, depth)
}

func (w *jsonWriter) member(k string) error {
	if err := w.str(k); err != nil {
		return err
	}
	if w.indent != "" {
		return w.raw(": ")
	}
	return w.raw(":")
}

func (w *jsonWriter) separator(comma bool, depth int) error {
	if comma {
		if err := w.raw(","); err != nil {
			return err
		}
	}
	return w.newline(depth)
}

func (w *jsonWriter) close(bracket string, nonEmpty bool, depth int) error {
	if nonEmpty {
		if err := w.newline(depth - 1); err != nil {
			return err
		}
	}
	return w.raw(bracket)
}

func (w *jsonWriter) newline(depth int) error {
	if w.indent == "" {
		return nil
	}
	return w.raw("\n" + strings.Repeat(w.indent, depth))
}

func (w *jsonWriter) raw(s string) error {
	if len(w.buf)+len(s) > w.maxBytes {
		return errTooLarge
	}
	w.buf = append(w.buf, s...)
	return nil
}

// str writes a JSON string literal the way JSON.stringify does: no HTML escaping,
// control characters as \uXXXX, everything else as UTF-8.
func (w *jsonWriter) str(s string) error {
	if len(w.buf)+len(s)+2 > w.maxBytes {
		return errTooLarge
	}
	w.buf = append(w.buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			w.buf = append(w.buf, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			w.buf = appendEscape(w.buf, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		w.buf = utf8.AppendRune(w.buf, r)
		i += size
	}
	w.buf = append(w.buf, '"')
	if len(w.buf) > w.maxBytes {
		return errTooLarge
	}
	return nil
}

func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	}
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}
