package deployconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// decodeStrict decodes one JSON object into v: unknown fields (named by
// their JSON path), type errors (named by field) and trailing data are
// errors. foldCase matches keys case-insensitively, as encoding/json does;
// without it a key must be spelled exactly, so "Image" is not "image".
func decodeStrict(data []byte, v any, foldCase bool) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return errors.New("empty document: want a JSON object")
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("want a JSON object {...}, got %s", quoteShort(trimmed))
	}
	if msg := unknownField(trimmed, reflect.TypeOf(v), "", foldCase); msg != "" {
		return errors.New(msg)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(trimmed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON object at byte %d: a config file holds exactly one object", dec.InputOffset())
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// unknownField returns "path.key: unknown field (known: ...)" for the first
// key (in sorted order) that t does not have, or "". Syntax errors are left
// to the decoder, which reports them with a position.
func unknownField(data []byte, t reflect.Type, path string, foldCase bool) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) {
		return ""
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	fields, names := jsonFields(t, foldCase)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range obj {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		lookup := k
		if foldCase {
			lookup = strings.ToLower(k)
		}
		ft, ok := fields[lookup]
		if !ok {
			return fmt.Sprintf("%s%s: unknown field (known: %s)", path, k, strings.Join(names, ", "))
		}
		if msg := unknownField(obj[k], ft, path+k+".", foldCase); msg != "" {
			return msg
		}
	}
	return ""
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

// describeJSONError turns decoder errors into messages naming the field or
// the line and column.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("%s: want %s, got a JSON %s", field, kindName(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: the document ends inside the object")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
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
