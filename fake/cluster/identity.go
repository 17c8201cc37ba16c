package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccountTokenSeconds is the lifetime of the tokens
// ServiceAccountConfig requests.
const ServiceAccountTokenSeconds = 24 * 60 * 60

// writeTokenFile creates a random token for the admin and for every
// declared user and writes the API server's --token-auth-file.
func (c *Cluster) writeTokenFile(path string) error {
	var b strings.Builder
	c.userTokens = map[string]string{}
	add := func(name string, groups []string) error {
		token, err := randomToken()
		if err != nil {
			return err
		}
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", token, name, name, strings.Join(groups, ","))
		c.userTokens[name] = token
		return nil
	}
	if err := add(AdminUser, []string{"system:masters"}); err != nil {
		return err
	}
	c.adminToken = c.userTokens[AdminUser]
	delete(c.userTokens, AdminUser)
	for _, u := range c.opts.Users {
		if err := add(u.Name, u.Groups); err != nil {
			return err
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing token file: %w", err)
	}
	return nil
}

func randomToken() (string, error) {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return hex.EncodeToString(buf), nil
}

// AdminConfig returns a fresh client config for AdminUser, a member of
// system:masters, which RBAC allows everything.
func (c *Cluster) AdminConfig() *rest.Config {
	return c.tokenConfig(c.adminToken)
}

// UserConfig returns a fresh client config for a user declared in
// Options.Users. It panics for an undeclared name: that is a mistake in the
// calling test, not a condition to handle.
func (c *Cluster) UserConfig(name string) *rest.Config {
	token, ok := c.userTokens[name]
	if !ok {
		panic(fmt.Sprintf("cluster: UserConfig(%q): no such user in Options.Users", name))
	}
	return c.tokenConfig(token)
}

// ServiceAccountConfig returns a client config that authenticates as the
// ServiceAccount namespace/name, with a token obtained through the
// TokenRequest API. The ServiceAccount must exist: no controller-manager
// runs, so not even "default" is created automatically.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	expiration := int64(ServiceAccountTokenSeconds)
	tr, err := c.admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiration},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return c.tokenConfig(tr.Status.Token), nil
}

func (c *Cluster) tokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.url,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData()},
		// Tests create objects in bursts; the client-side default (5 QPS)
		// would only slow them down against a local server.
		QPS:   100,
		Burst: 200,
	}
}

// WriteKubeconfig writes cfg (server, CA and bearer token) as a kubeconfig
// file usable with kubectl --kubeconfig and clientcmd loaders.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	const name = "extlb-local"
	caData := cfg.TLSClientConfig.CAData
	if len(caData) == 0 && cfg.TLSClientConfig.CAFile != "" {
		var err error
		if caData, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return fmt.Errorf("kubeconfig %s: reading CA file: %w", path, err)
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: caData,
		InsecureSkipTLSVerify:    cfg.TLSClientConfig.Insecure,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		ClientCertificateData: cfg.TLSClientConfig.CertData,
		ClientKeyData:         cfg.TLSClientConfig.KeyData,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: metav1.NamespaceDefault}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
