package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// FieldError is a request field at fault and why.
type FieldError struct {
	// Field is the path of the field, like "spec.ports[1].protocol".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// DecodeStrict decodes one JSON value from r into v (a pointer to a struct of
// this package). Unlike encoding/json it names the offending field of every
// error by its path ("spec.ports[1].port: must be an integer"), and it
// rejects unknown fields (keys match json tags exactly, case included), nulls
// for fields that cannot be absent, and data after the value.
func DecodeStrict(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return fieldErrorf("", "reading body: %v", err)
	}
	if len(data) > MaxBodyBytes {
		return fieldErrorf("", "body larger than %d bytes", MaxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return fieldErrorf("", "body is not valid JSON: %v", err)
	}
	if dec.More() {
		return fieldErrorf("", "body has data after the JSON value")
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("DecodeStrict needs a non-nil pointer, got %T", v)
	}
	return decodeValue(raw, rv.Elem(), "")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func decodeValue(raw json.RawMessage, v reflect.Value, path string) error {
	trimmed := bytes.TrimSpace(raw)
	if bytes.Equal(trimmed, []byte("null")) {
		if v.Kind() == reflect.Pointer || v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
			v.SetZero()
			return nil
		}
		return fieldErrorf(path, "must not be null")
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		if err := decodeValue(raw, elem.Elem(), path); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	case reflect.Struct:
		if v.Type().PkgPath() != reflect.TypeFor[Port]().PkgPath() {
			break // foreign structs (time.Time) decode themselves
		}
		return decodeStruct(trimmed, v, path)
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return fieldErrorf(path, "must be a list")
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			if err := decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	if err := json.Unmarshal(trimmed, v.Addr().Interface()); err != nil {
		return fieldErrorf(path, "must be %s", describeKind(v.Type()))
	}
	return nil
}

func decodeStruct(raw []byte, v reflect.Value, path string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return fieldErrorf(path, "must be an object")
	}
	fields := map[string]int{}
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	// Go maps have no order; report the first bad key in a stable order.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i, ok := fields[k]
		if !ok {
			return fieldErrorf(join(path, k), "unknown field")
		}
		if err := decodeValue(obj[k], v.Field(i), join(path, k)); err != nil {
			return err
		}
	}
	return nil
}

func describeKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Map:
		return "an object of strings"
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return "an RFC 3339 time"
		}
	}
	return "a " + t.String()
}
