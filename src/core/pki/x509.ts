/**
 * @peculiar/x509, loaded after the Reflect metadata polyfill its dependency injection needs: every
 * module of the PKI imports X.509 classes from here, never from the package directly.
 */
import 'reflect-metadata';

export * from '@peculiar/x509';
