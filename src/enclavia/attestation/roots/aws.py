"""AWS Nitro Enclaves attestation PKI root (G1).

Source: https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip (root.pem), as shipped in
capeprivacy/cape-js packages/isomorphic/root.pem (commit 7c2d45912d8407d50422e4a05fa6cefe96a3f6be), see
tests/assets/vectors/nitro/cape-js/SOURCE.md. CN=aws.nitro-enclaves, OU=AWS, O=Amazon, C=US, ECDSA P-384,
valid 2019-10-28..2049-10-28.

SHA-256 over DER: 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b. This is the
fingerprint AWS publishes in "Verifying the root of trust"
(docs.aws.amazon.com/enclaves/latest/user/verify-root.html) and the one SOURCE.md states; the tests
recheck it.
"""

from __future__ import annotations

AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

AWS_NITRO_ROOT_G1_PEM = b"""-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
"""
