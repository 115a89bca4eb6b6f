"""A test certificate authority and the server certificates it signs (for 127.0.0.1 and
localhost), written as PEM files: what a secured broker and a TLS PostgreSQL present."""

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_FOR = dt.timedelta(days=2)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: what Kafka's PEM key store and PostgreSQL both read.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class ServerCertificate:
    key: Path
    certificate: Path
    # The key, then the certificate and the CA's: a PEM key store for Kafka.
    key_store: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA whose certificate is written to `certificate`; it signs server certificates."""

    folder: Path
    name: str
    _key: ec.EllipticCurvePrivateKey
    _certificate: x509.Certificate

    @property
    def certificate(self) -> Path:
        return self.folder / f"{self.name}-ca.pem"

    @classmethod
    def create(cls, folder: Path, name: str = "nearhome-test") -> "CertificateAuthority":
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        subject = _name(f"{name} CA")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        authority = cls(folder, name, key, certificate)
        authority.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return authority

    def issue(
        self, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> ServerCertificate:
        """A server certificate for `hosts` (IP addresses and DNS names), signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        authority_pem = self._certificate.public_bytes(serialization.Encoding.PEM)
        paths = ServerCertificate(
            key=self.folder / f"{name}.key",
            certificate=self.folder / f"{name}.crt",
            key_store=self.folder / f"{name}-keystore.pem",
        )
        paths.key.write_bytes(_key_pem(key))
        paths.key.chmod(0o600)
        paths.certificate.write_bytes(certificate_pem + authority_pem)
        paths.key_store.write_bytes(_key_pem(key) + certificate_pem + authority_pem)
        return paths
