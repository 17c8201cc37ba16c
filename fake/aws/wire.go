package aws

import (
	"bytes"
	"encoding/xml"
	"net/http"
)

const (
	elbv2Namespace = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
	ec2Namespace   = "http://ec2.amazonaws.com/doc/2016-11-15/"
)

// writeELBv2 writes <ActionResponse><ActionResult>result</ActionResult>
// <ResponseMetadata><RequestId/></ResponseMetadata></ActionResponse>.
func (s *Server) writeELBv2(w http.ResponseWriter, action string, result any) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	root := xml.StartElement{Name: xml.Name{Local: action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: elbv2Namespace}}}
	err := enc.EncodeToken(root)
	if err == nil {
		err = enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: action + "Result"}})
	}
	if err == nil {
		err = enc.EncodeElement(struct {
			RequestID string `xml:"RequestId"`
		}{s.requestID()}, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}})
	}
	if err == nil {
		err = enc.EncodeToken(root.End())
	}
	if err == nil {
		err = enc.Flush()
	}
	s.writeXML(w, http.StatusOK, buf.Bytes(), err)
}

// writeEC2 writes <ActionResponse><requestId/>...result fields...</ActionResponse>.
func (s *Server) writeEC2(w http.ResponseWriter, action string, result any) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	root := xml.StartElement{Name: xml.Name{Local: action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ec2Namespace}}}
	err := enc.EncodeToken(root)
	if err == nil {
		err = enc.EncodeElement(s.requestID(), xml.StartElement{Name: xml.Name{Local: "requestId"}})
	}
	if err == nil {
		// Encode the result's fields directly under the root element.
		var inner bytes.Buffer
		if err = xml.NewEncoder(&inner).EncodeElement(result, xml.StartElement{Name: xml.Name{Local: "x"}}); err == nil {
			if err = enc.Flush(); err == nil {
				b := inner.Bytes()
				buf.Write(b[len("<x>") : len(b)-len("</x>")])
			}
		}
	}
	if err == nil {
		err = enc.EncodeToken(root.End())
	}
	if err == nil {
		err = enc.Flush()
	}
	s.writeXML(w, http.StatusOK, buf.Bytes(), err)
}

// writeError writes the protocol's error document with the error's status.
func (s *Server) writeError(w http.ResponseWriter, service string, e *apiError) {
	var doc any
	if service == ServiceELBv2 {
		typ := "Sender"
		if e.status >= 500 {
			typ = "Receiver"
		}
		doc = struct {
			XMLName   xml.Name `xml:"ErrorResponse"`
			Xmlns     string   `xml:"xmlns,attr"`
			Type      string   `xml:"Error>Type"`
			Code      string   `xml:"Error>Code"`
			Message   string   `xml:"Error>Message"`
			RequestID string   `xml:"RequestId"`
		}{Xmlns: elbv2Namespace, Type: typ, Code: e.code, Message: e.message, RequestID: s.requestID()}
	} else {
		doc = struct {
			XMLName   xml.Name `xml:"Response"`
			Code      string   `xml:"Errors>Error>Code"`
			Message   string   `xml:"Errors>Error>Message"`
			RequestID string   `xml:"RequestID"`
		}{Code: e.code, Message: e.message, RequestID: s.requestID()}
	}
	b, err := xml.Marshal(doc)
	s.writeXML(w, e.status, b, err)
}

func (s *Server) writeXML(w http.ResponseWriter, status int, body []byte, err error) {
	if err != nil {
		http.Error(w, "fake aws: encoding the response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	w.Write(body)
}
