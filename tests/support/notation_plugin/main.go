// notation-gokms: a test KMS plugin built on the reference framework (notation-plugin-framework-go), so that the
// plugin protocol this project speaks is judged by the framework every real KMS plugin (AWS Signer, Azure Key
// Vault, ...) is built on. The "KMS" is a PEM key and chain on disk: keyId is the path stem (<stem>.key,
// <stem>.crt). The executable's name picks the contract (the framework asks for the capabilities without any
// pluginConfig): installed as notation-gokms it is SIGNATURE_GENERATOR.RAW (generate-signature); as
// notation-gokms-envelope it is SIGNATURE_GENERATOR.ENVELOPE (generate-envelope, the envelope made by
// notation-core-go). pluginConfig "mode": "swap" makes the envelope plugin hostile: it signs another size.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	_ "github.com/notaryproject/notation-core-go/signature/cose"
	_ "github.com/notaryproject/notation-core-go/signature/jws"
	"github.com/notaryproject/notation-plugin-framework-go/cli"
	"github.com/notaryproject/notation-plugin-framework-go/plugin"
)

const version = "1.0.0"

// name is the installed name: notation-<name>.
var name = strings.TrimPrefix(filepath.Base(os.Args[0]), "notation-")

type kms struct{}

func load(stem string) (crypto.Signer, []*x509.Certificate, error) {
	keyPEM, err := os.ReadFile(stem + ".key")
	if err != nil {
		return nil, nil, plugin.NewValidationErrorf("key %s: %v", stem, err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, plugin.NewValidationErrorf("key %s: not PEM", stem)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, plugin.NewValidationErrorf("key %s: %v", stem, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, plugin.NewValidationErrorf("key %s: not a signing key", stem)
	}
	chainPEM, err := os.ReadFile(stem + ".crt")
	if err != nil {
		return nil, nil, plugin.NewValidationErrorf("chain %s: %v", stem, err)
	}
	var chain []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, plugin.NewValidationErrorf("chain %s: %v", stem, err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return nil, nil, plugin.NewValidationErrorf("chain %s: no certificate", stem)
	}
	return signer, chain, nil
}

func keySpec(key crypto.PublicKey) (plugin.KeySpec, crypto.Hash, plugin.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return plugin.KeySpecEC256, crypto.SHA256, plugin.SignatureAlgorithmECDSA_SHA256, nil
		case elliptic.P384():
			return plugin.KeySpecEC384, crypto.SHA384, plugin.SignatureAlgorithmECDSA_SHA384, nil
		case elliptic.P521():
			return plugin.KeySpecEC521, crypto.SHA512, plugin.SignatureAlgorithmECDSA_SHA512, nil
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return plugin.KeySpecRSA2048, crypto.SHA256, plugin.SignatureAlgorithmRSASSA_PSS_SHA256, nil
		case 3072:
			return plugin.KeySpecRSA3072, crypto.SHA384, plugin.SignatureAlgorithmRSASSA_PSS_SHA384, nil
		case 4096:
			return plugin.KeySpecRSA4096, crypto.SHA512, plugin.SignatureAlgorithmRSASSA_PSS_SHA512, nil
		}
	}
	return "", 0, "", errors.New("unsupported key")
}

func (*kms) GetMetadata(_ context.Context, req *plugin.GetMetadataRequest) (*plugin.GetMetadataResponse, error) {
	capability := plugin.CapabilitySignatureGenerator
	if strings.HasSuffix(name, "-envelope") {
		capability = plugin.CapabilityEnvelopeGenerator
	}
	return &plugin.GetMetadataResponse{
		Name:                      name,
		Description:               "dct2notation test KMS on notation-plugin-framework-go",
		Version:                   version,
		URL:                       "https://example.invalid/gokms",
		SupportedContractVersions: []string{plugin.ContractVersion},
		Capabilities:              []plugin.Capability{capability},
	}, nil
}

func (*kms) DescribeKey(_ context.Context, req *plugin.DescribeKeyRequest) (*plugin.DescribeKeyResponse, error) {
	_, chain, err := load(req.KeyID)
	if err != nil {
		return nil, err
	}
	spec, _, _, err := keySpec(chain[0].PublicKey)
	if err != nil {
		return nil, err
	}
	return &plugin.DescribeKeyResponse{KeyID: req.KeyID, KeySpec: spec}, nil
}

func raw(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = c.Raw
	}
	return out
}

func (*kms) GenerateSignature(_ context.Context, req *plugin.GenerateSignatureRequest) (*plugin.GenerateSignatureResponse, error) {
	key, chain, err := load(req.KeyID)
	if err != nil {
		return nil, err
	}
	_, hash, algorithm, err := keySpec(chain[0].PublicKey)
	if err != nil {
		return nil, err
	}
	h := hash.New()
	h.Write(req.Payload)
	digest := h.Sum(nil)
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(pad(r, size), pad(s, size)...)
	case *rsa.PrivateKey:
		sig, err = rsa.SignPSS(rand.Reader, k, hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			return nil, err
		}
	}
	return &plugin.GenerateSignatureResponse{
		KeyID:            req.KeyID,
		Signature:        sig,
		SigningAlgorithm: algorithm,
		CertificateChain: raw(chain),
	}, nil
}

func pad(n *big.Int, size int) []byte {
	out := make([]byte, size)
	return n.FillBytes(out)
}

func (*kms) GenerateEnvelope(_ context.Context, req *plugin.GenerateEnvelopeRequest) (*plugin.GenerateEnvelopeResponse, error) {
	key, chain, err := load(req.KeyID)
	if err != nil {
		return nil, err
	}
	signer, err := signature.NewLocalSigner(chain, key)
	if err != nil {
		return nil, err
	}
	env, err := signature.NewEnvelope(req.SignatureEnvelopeType)
	if err != nil {
		return nil, plugin.NewValidationErrorf("envelope type %s: %v", req.SignatureEnvelopeType, err)
	}
	payload := req.Payload
	if req.PluginConfig["mode"] == "swap" {
		var doc map[string]map[string]interface{}
		if err := json.Unmarshal(payload, &doc); err != nil {
			return nil, err
		}
		doc["targetArtifact"]["size"] = doc["targetArtifact"]["size"].(float64) + 1
		if payload, err = json.Marshal(doc); err != nil {
			return nil, err
		}
	}
	now := time.Now().Truncate(time.Second)
	request := &signature.SignRequest{
		Payload:       signature.Payload{ContentType: req.PayloadType, Content: payload},
		Signer:        signer,
		SigningTime:   now,
		SigningScheme: signature.SigningSchemeX509,
		SigningAgent:  name + "/" + version,
	}
	if req.ExpiryDurationInSeconds > 0 {
		request.Expiry = now.Add(time.Duration(req.ExpiryDurationInSeconds) * time.Second)
	}
	sig, err := env.Sign(request)
	if err != nil {
		return nil, err
	}
	return &plugin.GenerateEnvelopeResponse{
		SignatureEnvelope:     sig,
		SignatureEnvelopeType: req.SignatureEnvelopeType,
		Annotations:           map[string]string{"com.example.kms": name},
	}, nil
}

func (*kms) VerifySignature(context.Context, *plugin.VerifySignatureRequest) (*plugin.VerifySignatureResponse, error) {
	return nil, plugin.NewUnsupportedError("verify-signature")
}

func main() {
	p, err := cli.New(&kms{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p.Execute(context.Background(), os.Args)
}
