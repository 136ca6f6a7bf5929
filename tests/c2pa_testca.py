"""A throw-away certificate authority for C2PA signing tests, made with ``cryptography``.

c2pa-rs accepts only certificates shaped like production ones: an EC P-256 CA and an end-entity
certificate with keyUsage digitalSignature, extendedKeyUsage emailProtection, subject and
authority key identifiers, and the private key in PKCS#8.  ``make_ca`` builds such a pair;
``sign_image`` signs a benign picture with c2pa-python's :class:`c2pa.Builder`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@dataclass(frozen=True)
class TestCA:
    ca_pem: str  # the root, to use as a trust anchor
    cert_chain_pem: str  # end-entity first, then the CA (what the signer embeds)
    key_pem: str  # end-entity private key, PKCS#8
    org: str
    common_name: str


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def make_ca(
    org: str = "Consentry Test CA",
    common_name: str = "Consentry Test Signer",
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> TestCA:
    """A fresh CA and end-entity; the end-entity's validity defaults to [now - 1 day, now + 30 days]."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{org} Root", org)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, org))
        .issuer_name(ca_name)
        .public_key(ee_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    key_pem = ee_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return TestCA(ca_pem=pem(ca_cert), cert_chain_pem=pem(ee_cert) + pem(ca_cert), key_pem=key_pem,
                  org=org, common_name=common_name)


def _context():
    import c2pa

    # Offline; verification after signing off so an expired certificate can still sign.
    return c2pa.Context.from_dict({
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_after_sign": False},
        "builder": {"thumbnail": {"enabled": False}},
    })


def _signer(ca: TestCA):
    import c2pa

    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, ca.cert_chain_pem.encode(), ca.key_pem.encode(), None)
    return c2pa.Signer.from_info(info)


def sign_image(
    ca: TestCA,
    image: bytes,
    mime: str = "image/jpeg",
    *,
    source_type: str | None = "trainedAlgorithmicMedia",
    actions: list[dict] | None = None,
    ingredient: tuple[bytes, str] | None = None,
    relationship: str = "parentOf",
    title: str = "a lighthouse at dusk",
    generator: str = "Consentry test generator",
) -> bytes:
    """Return ``image`` with an embedded C2PA manifest signed by ``ca``'s end-entity.

    ``source_type`` (an IPTC DigitalSourceType term) goes on a ``c2pa.created`` action unless
    ``actions`` is given.  ``ingredient`` = (bytes, mime) adds an ingredient labelled ``parent``
    with ``relationship`` (its own manifest, if any, is carried into this one's store); actions
    refer to it with ``{"parameters": {"ingredientIds": ["parent"]}}``.
    """
    import c2pa

    if actions is None:
        action = {"action": "c2pa.created", "softwareAgent": {"name": generator}}
        if source_type:
            action["digitalSourceType"] = IPTC + source_type
        actions = [action]
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": title,
        "format": mime,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    ctx = _context()
    try:
        with c2pa.Builder(json.dumps(manifest), context=ctx) as builder:
            if ingredient is not None:
                data, ing_mime = ingredient
                builder.add_ingredient(
                    {"title": "parent picture", "relationship": relationship, "label": "parent"}, ing_mime, io.BytesIO(data)
                )
            out = io.BytesIO()
            with _signer(ca) as signer:
                builder.sign(signer, mime, io.BytesIO(image), out)
            return out.getvalue()
    finally:
        ctx.close()
