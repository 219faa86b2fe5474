package deployconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// decodeStrict decodes one JSON object into v and returns every problem at
// once (see decodeInto), joined, or nil.
func decodeStrict(data []byte, v any, foldCase bool) error {
	var p problems
	decodeInto(data, v, foldCase, &p)
	return p.plain()
}

// decodeInto decodes one JSON object into v as json.Unmarshal would, and
// adds to p every way the document is not what v describes: a syntax error
// (with its line and column; nothing else is checked then), trailing data,
// and, each named by its JSON path, duplicate keys, unknown fields and
// values of the wrong type. v gets what could be decoded. foldCase matches
// keys case-insensitively, as encoding/json does; without it a key must be
// spelled exactly, so "Image" is not "image". It reports whether the
// document was a JSON object at all.
func decodeInto(data []byte, v any, foldCase bool, p *problems) bool {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		p.addBad("", "empty document: want a JSON object")
		return false
	}
	if trimmed[0] != '{' {
		p.addBad("", "want a JSON object {...}, got %s", quoteShort(trimmed))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		p.addBad("", "%s", describeJSONError(trimmed, err))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		p.addBad("", "trailing data after the JSON object at byte %d: a config file holds exactly one object", dec.InputOffset())
		return false
	}
	walk(raw, reflect.TypeOf(v), "", foldCase, p)
	// Best effort: what walk reported stays at its zero value.
	_ = json.Unmarshal(raw, v)
	return true
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// walk checks the JSON value raw against type t, adding a problem named by
// path for each duplicate key, unknown field and value of the wrong type.
func walk(raw json.RawMessage, t reflect.Type, path string, foldCase bool, p *problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if string(raw) == "null" || t.Kind() == reflect.Interface {
		return // null leaves the zero value; an interface takes anything
	}
	wrongType := func() {
		p.addBad(orTop(path), "want %s, got a JSON %s", kindName(t), jsonKind(raw))
	}
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType):
		if json.Unmarshal(raw, reflect.New(t).Interface()) != nil {
			wrongType()
		}
	case t.Kind() == reflect.Struct:
		walkStruct(raw, t, path, foldCase, p, wrongType)
	case t.Kind() == reflect.Map:
		walkObject(raw, path, false, p, wrongType, func(string) (reflect.Type, bool) { return t.Elem(), true })
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		walkList(raw, t, path, foldCase, p, wrongType)
	default:
		if json.Unmarshal(raw, reflect.New(t).Interface()) != nil {
			wrongType()
		}
	}
}

// walkStruct walks the members of the JSON object raw against the fields of
// struct type t; a key that names no field is a problem.
func walkStruct(raw json.RawMessage, t reflect.Type, path string, foldCase bool, p *problems, wrongType func()) {
	fields, names := jsonFields(t, foldCase)
	walkObject(raw, path, foldCase, p, wrongType, func(key string) (reflect.Type, bool) {
		lookup := key
		if foldCase {
			lookup = strings.ToLower(key)
		}
		ft, ok := fields[lookup]
		if !ok {
			p.addBad(path+key, "unknown field (known: %s)", strings.Join(names, ", "))
		}
		return ft, ok
	})
}

// walkList walks the items of the JSON array raw against t's element type.
func walkList(raw json.RawMessage, t reflect.Type, path string, foldCase bool, p *problems, wrongType func()) {
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		wrongType()
		return
	}
	for i, item := range items {
		walk(item, t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i), foldCase, p)
	}
}

// walkObject checks that raw is an object whose keys appear once each, and
// walks each member's value with the type member gives it (false: skip).
func walkObject(raw json.RawMessage, path string, foldCase bool, p *problems, wrongType func(),
	member func(key string) (reflect.Type, bool)) {
	if raw[0] != '{' {
		wrongType()
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.Token() // the '{' (raw is valid JSON: no errors below)
	seen := map[string]bool{}
	for dec.More() {
		tok, _ := dec.Token()
		key, _ := tok.(string)
		var val json.RawMessage
		if dec.Decode(&val) != nil {
			return
		}
		name := key
		if foldCase {
			name = strings.ToLower(key)
		}
		if seen[name] {
			p.addBad(path+key, "duplicate key: give each field once (JSON parsers disagree on which copy wins)")
			continue
		}
		seen[name] = true
		if t, ok := member(key); ok {
			walk(val, t, path+key+".", foldCase, p)
		}
	}
}

// orTop names the document itself when path is empty, and drops the
// trailing dot walk leaves on a path.
func orTop(path string) string {
	if path = strings.TrimSuffix(path, "."); path == "" {
		return "(top level)"
	}
	return path
}

// jsonKind names a JSON value's kind as encoding/json's errors do:
// "string", "number 1.5", "bool", "array", "object".
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
		return "number " + string(raw)
	}
	return "value " + quoteShort(raw)
}

// jsonFields are the JSON names of struct type t's fields, with their
// types (keyed lower-case when foldCase), and the names as declared.
func jsonFields(t reflect.Type, foldCase bool) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if foldCase {
			name = strings.ToLower(name)
		}
		fields[name] = f.Type
	}
	return fields, names
}

// describeJSONError turns a syntax error into a message naming the line
// and column.
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: the document ends inside the object"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// position converts a byte offset to a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// kindName names a Go type the way a config author thinks of it.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(kindName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map:
		return "an object"
	case reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}
